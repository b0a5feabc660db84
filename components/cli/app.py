"""The ``emosafe`` command line (app layer). One sub-command per pipeline stage, named as in dvc.yaml,
params.yaml and the Prefect flows. Heavy libraries are imported inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from components import __version__
from components.errors import EmosafeError
from registry.commands import app as registry_app

app = typer.Typer(
    name="emosafe",
    help="Train, gate, ship and watch emotional-safety classifiers. Raw message text never reaches logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(registry_app, name="registry")  # registry/commands.py imports only typer at module level
ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="Params file (the single source of truth).", show_default=True)
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emosafe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def passive_omp() -> None:
    """OpenMP threads that sleep instead of spinning while they wait: on a shared or busy machine spinning threads
    made 2-thread training 3-6x slower than 1 thread (measured); idle machines lose almost nothing. Must be set
    before torch loads; an explicit OMP_WAIT_POLICY wins."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def print_summary(summary: dict[str, Any], where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    merge = summary["merge"]
    console.print(
        f"[bold]Dataset[/bold] {where}: {summary['rows']} messages "
        f"({merge['input_rows']} read, {merge['exact_duplicates_removed']} duplicates removed, "
        f"{merge['conflict_groups']} label conflicts resolved by '{merge['conflict_policy']}')"
    )
    sources = Table("source", "rows", title="Per source")
    for name, count in summary["source"].items():
        sources.add_row(name, str(count))
    console.print(sources)
    from components.schema import CATEGORIES, LABELS, Split

    splits = {name.value: summary["split"][name.value] for name in Split}
    table = Table("", *[f"{name} ({part['rows']})" for name, part in splits.items()], "all", title="Per split")
    for kind, keys in (("label", LABELS), ("category", CATEGORIES)):
        for key in keys:
            table.add_row(key, *[str(part[kind][key]) for part in splits.values()], str(summary[kind][key]))
    console.print(table)


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and exit code 2, never a traceback."""
    from components.cli import operations, site, stage_commands  # noqa: F401  (registers the commands)

    try:
        app()
    except EmosafeError as exc:
        typer.echo(f"emosafe: error: {exc}", err=True)
        raise SystemExit(2) from None
    except OSError as exc:  # the backstop: a path the system refused (permissions, a file where a folder goes, disk)
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or type(exc).__name__
        typer.echo(f"emosafe: error: {where}{reason} (rule: outputs go to writable folders with free space)", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

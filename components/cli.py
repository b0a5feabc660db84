"""The ``emosafe`` command line (app layer). One sub-command per pipeline stage, named as in dvc.yaml,
params.yaml and the Prefect flows. Heavy libraries are imported inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from components import __version__
from components.errors import EmosafeError

app = typer.Typer(
    name="emosafe",
    help="Train, gate, ship and watch emotional-safety classifiers. Raw message text never reaches logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
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


@app.command()
def prepare(params: ParamsOption = Path("params.yaml")) -> None:
    """Merge the declared corpora into one de-duplicated, stratified train/val/test dataset.

    Reads the `prepare` section and `seed`; writes <output_dir>/dataset.parquet and summary.json. On bad input
    it names the file, row and rule, exits non-zero and writes nothing.
    """
    from components.config import load_params
    from components.stages.prepare import prepare as run_prepare

    result = run_prepare(load_params(params))
    _print_summary(result.summary, str(result.dataset_path))


@app.command()
def summary(params: ParamsOption = Path("params.yaml")) -> None:
    """Print the dataset summary written by the last `prepare` run (counts only, never text)."""
    from components.config import load_params
    from components.stages.prepare import SUMMARY_FILE

    path = Path(load_params(params).prepare.output_dir) / SUMMARY_FILE
    if not path.is_file():
        raise EmosafeError(f"{path}: not found; run `emosafe prepare` or `dvc repro` first")
    _print_summary(json.loads(path.read_text(encoding="utf-8")), str(path.parent))


@app.command("check-params")
def check_params(
    files: Annotated[list[Path] | None, typer.Argument(help="Params files to check.")] = None,
) -> None:
    """Validate params files against the typed configuration; exits non-zero naming the bad key."""
    from components.config import load_params

    for file in files or [Path("params.yaml")]:
        loaded = load_params(file)
        typer.echo(f"{file}: ok ({len(loaded.prepare.sources)} source(s), seed {loaded.seed})")


def _print_summary(summary: dict[str, Any], where: str) -> None:
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
    try:
        app()
    except EmosafeError as exc:
        typer.echo(f"emosafe: error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

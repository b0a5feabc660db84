"""``emosafe registry ...``: the registry's Typer sub-app (app layer).

Only typer is imported at module level so ``emosafe --help`` stays fast; the registry itself is imported inside
each command. Registry mistakes (unknown version, refused gate, damaged artifact) are EmosafeErrors, turned into
one line and exit 2 by ``components.cli.main``; ``verify`` exits 1 when it finds damage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from registry.core import Registry
    from registry.store import EvaluationRecord

app = typer.Typer(
    help="Versions, aliases (candidate/staging/production), gate, audit history, integrity.", no_args_is_help=True
)
ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="Params file (register section).")]
RefArg = Annotated[str, typer.Argument(help="name@alias or name@version, e.g. emosafe-trinary@production.")]


def open_registry(params: Path, read_only: bool = False) -> Registry:
    """The registry configured by ``params`` (``$EMOSAFE_REGISTRY`` overrides ``register.store``); ``read_only`` for
    commands that only look (a missing registry is then an error, not a new empty one)."""
    from components.config import load_params
    from registry.core import open_registry as configured

    config = load_params(params).register if params.is_file() else None
    if config is None:
        from components.config.register import RegisterConfig

        config = RegisterConfig()
    return configured(config, Path(), read_only=read_only)


@app.command("list")
def list_(params: ParamsOption = Path("params.yaml")) -> None:
    """List registered versions with their aliases."""
    registry = open_registry(params, read_only=True)
    for record in registry.meta.list_versions():
        held = [a for a, v in registry.meta.aliases(record.name).items() if v == record.version]
        typer.echo(f"{record.name}@{record.version}\t{record.task}\t{record.created_at}\t{','.join(held) or '-'}")


@app.command()
def show(ref: RefArg, params: ParamsOption = Path("params.yaml")) -> None:
    """Print one version's record (lineage, metrics, artifacts, re-evaluations on feedback) as JSON."""
    from dataclasses import asdict

    from registry.names import parse_ref

    registry = open_registry(params, read_only=True)
    record = registry.resolve(parse_ref(ref))
    evaluations = [_evaluation_summary(e) for e in registry.meta.evaluations(record.name, record.version)]
    payload = {**asdict(record), "aliases": registry.meta.aliases(record.name), "evaluations": evaluations}
    typer.echo(json.dumps(payload, indent=2))


@app.command()
def register(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Model folder to store (safetensors/ONNX/JSON).")],
    metrics: Annotated[Path, typer.Option("--metrics", help="Evaluation metrics JSON (docs/registry.md).")],
    name: Annotated[str | None, typer.Option(help="Registered model name; default emosafe-<task>.")] = None,
    data_hash: Annotated[str | None, typer.Option(help="Override the data hash read from meta.json.")] = None,
    wandb_run: Annotated[str | None, typer.Option(help="Override the W&B run path read from meta.json.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Register a run folder and its metrics as a new version (idempotent) and point `candidate` at it.

    The gate accepts only figures bound to these files: an `evaluate` report of this run folder, or a bundle's own
    quantization.json. Other figures are registered as declared and refused at promotion without --force --reason.
    """
    from components.io import sha256_file

    try:
        payload = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        from components.errors import RegistryError

        raise RegistryError(f"{metrics}: cannot read metrics JSON ({exc})") from None
    overrides = {"data_hash": data_hash, "wandb_run": wandb_run, "metrics_sha256": sha256_file(metrics)}
    record, created = open_registry(params).register(run_dir, payload, name, Path(), overrides, origin=str(metrics))
    typer.echo(f"{record.name}@{record.version} {'registered' if created else 'already registered (same artifacts)'}")
    evidence = record.lineage.get("evidence") or {}
    if evidence.get("status") == "bound":
        typer.echo(f"  figures bound: {evidence.get('detail')}")
    else:
        typer.echo(f"  figures DECLARED: {evidence.get('detail')}; the gate refuses them (--force --reason overrides)")


@app.command()
def promote(
    ref: RefArg,
    to: Annotated[str, typer.Option("--to", help="Alias to move: candidate, staging or production.")] = "production",
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the history).")] = "",
    force: Annotated[bool, typer.Option("--force", help="Override a refusing gate (needs --reason).")] = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Run the gate and move an alias to a version; refused unless the gate passes or --force --reason."""
    from registry.names import parse_ref

    event, decision = open_registry(params).promote(parse_ref(ref, "candidate"), to, reason, force)
    if decision is not None:
        for line in decision.reasons:
            typer.echo(f"  {'ok' if decision.promote else '-'} {line}")
    if event is None:
        typer.echo(f"{ref}: already at {to}")
    else:
        typer.echo(f"{event.name}@{event.alias}: {_v(event.from_version)} -> v{event.to_version} ({event.action})")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move back.")] = "production",
    to: Annotated[
        int | None, typer.Option("--to", help="Version (must have held the alias); default previous.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the history).")] = "",
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Move an alias back to the version it held before (recorded in the history)."""
    from registry.names import validate_name

    event = open_registry(params).rollback(validate_name(name), alias, to, reason)
    typer.echo(f"{event.name}@{event.alias}: {_v(event.from_version)} -> v{event.to_version} (rollback)")


@app.command()
def history(
    name: Annotated[str | None, typer.Argument(help="Registered model name (all when omitted).")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Print the audit history of alias moves: when, alias, from, to, who, action, why, gate report hash."""
    for e in open_registry(params, read_only=True).meta.history(name):
        typer.echo(
            f"{e.seq}\t{e.at}\t{e.name}@{e.alias}\t{e.from_version}->{e.to_version}\t{e.who}\t{e.action}"
            f"\t{e.why}\t{e.gate_report_hash or '-'}"
        )


@app.command()
def evaluations(
    name: Annotated[str | None, typer.Argument(help="Registered model name (all when omitted).")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Print the re-evaluations on labelled feedback (`emosafe reevaluate`): when, version, rows, macro-F1, flags."""
    for e in open_registry(params, read_only=True).meta.evaluations(name):
        row = _evaluation_summary(e)
        f1 = row["macro_f1"] or {}
        figure = "-" if f1.get("value") is None else f"{f1['value']:.3f}"
        if f1.get("low") is not None:
            figure += f" [{f1['low']:.3f}, {f1['high']:.3f}]"
        typer.echo(
            f"{e.seq}\t{e.evaluated_at}\t{e.name}@{e.version}\t{e.feedback_rows} rows\t"
            f"{e.feedback_sha256[:12]}\tmacro-F1 {figure}\t{','.join(e.flagged) or 'ok'}\t{e.who}"
        )


def _evaluation_summary(e: EvaluationRecord) -> dict[str, Any]:
    """One evaluation without its full figures (those are in its report and `registry.meta.evaluations`)."""
    return {
        "seq": e.seq,
        "evaluated_at": e.evaluated_at,
        "who": e.who,
        "feedback_sha256": e.feedback_sha256,
        "feedback_rows": e.feedback_rows,
        "flagged": list(e.flagged),
        "macro_f1": e.metrics.get("macro_f1"),
        "report": e.details.get("report"),
    }


@app.command()
def verify(
    name: Annotated[str | None, typer.Argument(help="Registered model name (all when omitted).")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Re-hash every stored artifact and check aliases against the history; exit 1 on any damage."""
    problems = open_registry(params, read_only=True).verify(name)
    for problem in problems:
        typer.echo(f"DAMAGED: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("ok: every artifact matches its sha256 and every alias agrees with the history")


@app.command()
def card(
    ref: RefArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write the model card (Markdown) of a version: data, lineage, metrics with CIs, gate decision, limits."""
    from components.io import atomic_write_bytes
    from registry.card import render_card
    from registry.names import parse_ref

    registry = open_registry(params, read_only=True)
    record = registry.resolve(parse_ref(ref))
    aliases, history = registry.meta.aliases(record.name), registry.meta.history(record.name)
    text = render_card(record, aliases, registry.meta.latest_report(record.name, record.version), history)
    if output is None:
        typer.echo(text)
    else:
        atomic_write_bytes(output, text.encode())
        typer.echo(f"wrote {output}")


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"

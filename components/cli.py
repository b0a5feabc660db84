"""The ``emosafe`` command line (app layer). One sub-command per pipeline stage, named as in dvc.yaml,
params.yaml and the Prefect flows. Heavy libraries are imported inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
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
def augment(params: ParamsOption = Path("params.yaml")) -> None:
    """Add emotion re-interpretation rewrites of train messages (local LM or an OpenAI-compatible API).

    Reads the `augment` section and `seed`; writes <output_dir>/dataset.parquet, summary.json and run.json.
    Generations are cached in <cache_dir>, so a second run generates nothing. With `enabled: false` the prepared
    rows pass through unchanged. Fails with one line on a missing input, prompt file, API key or API error.
    """
    from components.config import load_params
    from components.stages.augment import augment as run_augment

    result = run_augment(load_params(params))
    rewrites, run = result.summary["rewrites"], result.run
    dropped = {reason: n for reason, n in rewrites["filtered"].items() if n}
    typer.echo(f"{result.dataset_path}: {result.summary['rows']} rows, {rewrites['kept']} rewrites kept")
    if result.summary["enabled"]:
        typer.echo(f"filtered: {dropped or 'none'}; label policy: {rewrites['label_policy']}")
        typer.echo(f"this run: {run['rewrites']['generated']} generated, {run['rewrites']['cache_hits']} from cache")


@app.command()
def validate(
    params: ParamsOption = Path("params.yaml"),
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Dataset to check instead of validate.input.")
    ] = None,
) -> None:
    """Run the data gate (Great Expectations suites) on the dataset before anything trains on it.

    Reads the `validate` section; writes <output_dir>/report.json and Data Docs (HTML) under <output_dir>/data_docs/.
    When an expectation fails it prints which rule, how many rows and example ids (never text) and exits non-zero.
    """
    from components.config import load_params
    from components.stages.validate import validate as run_validate

    result = run_validate(load_params(params), data=data)
    typer.echo(
        f"validation passed: {result.report['statistics']['expectations']} expectations, {result.report['rows']} rows"
    )
    typer.echo(f"report: {result.report_path}")
    typer.echo(f"Data Docs: {result.docs_index.as_uri()}")


@app.command()
def convert(
    params: ParamsOption = Path("params.yaml"),
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models.")] = None,
) -> None:
    """Convert the active profile's base models (SmolLM2 GGUF cuts, MiniLM) to safetensors under train.base_dir.

    One GGUF de-quantisation (15-20 s) serves every ladder size; later loads take under a second.
    """
    _passive_omp()
    from components.config import load_params
    from components.stages.convert import convert as run_convert

    result = run_convert(load_params(params), names=model)
    typer.echo(f"converted {len(result.folders)} model(s) in {result.seconds:.1f}s: {', '.join(result.folders)}")


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", "-m", help="A model of the active train profile.")],
    task: Annotated[str, typer.Option("--task", "-t", help="trinary or taxonomy.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Fine-tune one model of the active profile on one task (LoRA/QLoRA); resumes from its last checkpoint.

    Writes train.output_dir/<model>-<task>/ (adapter, head, metrics, curve, meta.json). Run it under
    `accelerate launch` for several processes or GPUs (see docs/training.md).
    """
    _passive_omp()
    from components.config import load_params
    from components.stages.train import train as run_train

    result = run_train(load_params(params), model, task)
    typer.echo(result.summary)


@app.command()
def evaluate(
    params: ParamsOption = Path("params.yaml"),
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Only these models (repeatable).")] = None,
    setting: Annotated[
        list[str] | None, typer.Option("--setting", "-s", help="zero_shot / few_shot / fine_tuned.")
    ] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="trinary / taxonomy.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Evaluate on this corpus instead of test.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="evaluate.sources entry that reads --data.")] = None,
) -> None:
    """Score models zero-shot, few-shot (label likelihood) and fine-tuned (training runs) on val and test, with CIs.

    Writes evaluate.output_dir/<model>-<setting>-<task>.json (metrics, thresholds tuned on val, canaries; no text).
    --data reads any corpus through a declared source adapter and writes under output_dir/external/<source>/.
    """
    from components.config import load_params
    from components.stages.evaluate import evaluate as run_evaluate

    outcome = run_evaluate(
        load_params(params), models=model or (), settings=setting or (), tasks=task or (), data=data, source=source
    )
    for row in outcome.summary:
        typer.echo(
            f"{row['model']:<14} {row['setting']:<10} {row['task']:<9} accuracy {row['accuracy']:.3f} "
            f"macro-F1 {row['macro_f1']:.3f} canaries failed {row['canaries_failed']}"
        )


@app.command()
def report(params: ParamsOption = Path("params.yaml")) -> None:
    """Write the scaling report from the evaluation reports: table with CIs, fine-tuned vs prompting, plots.

    Reads report.input_dir/*.json (from `emosafe evaluate`); writes report.output_dir/ (scaling.md, metrics.json,
    meta.json, plots/*.png and plot data for `dvc plots show`) and one W&B run (offline). Fails with one line
    naming the file when the folder is empty or a report is malformed. Metrics and model names only, never text.
    """
    from components.config import load_params
    from components.stages.report import report as run_report

    outcome = run_report(load_params(params))
    typer.echo(f"{outcome.output_dir}: {outcome.summary['reports']} reports -> {outcome.summary['markdown']}")
    for line in outcome.summary["comparisons"]:
        typer.echo(line)


@app.command()
def export(
    params: ParamsOption = Path("params.yaml"),
    run: Annotated[Path | None, typer.Option("--run", help="A training run folder (models/<model>-<task>).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="A registered run: name@alias or name@N.")] = None,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Only these tasks of export.model.")] = None,
) -> None:
    """Export a fine-tuned run to ONNX (fp32 + int8) and prove the shipped int8 file still passes.

    Without --run/--model: every export.tasks run of export.model. Writes export.output_dir/<run>/ (model_int8.onnx,
    model_fp32.onnx, tokenizer, config.json, labels.json, parity.json, quantization.json, meta.json, manifest.json).
    Fails with one line, writing nothing, when parity fails. A failed int8 check is written (quantization.json
    passed: false) and reported; the registry's promotion gate refuses such a version.
    """
    from components.config import load_params
    from components.stages.export import export as run_export
    from components.stages.export import export_all

    loaded = load_params(params)
    if run is not None and model is not None:
        raise EmosafeError("give --run or --model, not both")
    if model is not None:
        from registry.core import load_model

        found = load_model(model, loaded.register)
        outcomes = [run_export(loaded, found.folder, name=f"{found.record.name}-v{found.record.version}", source=model)]
    elif run is not None:
        outcomes = [run_export(loaded, run)]
    else:
        outcomes = export_all(loaded, tasks=task or ())
    for outcome in outcomes:
        comparison, mb = outcome.quantization["comparison"], outcome.sizes["int8"] / 2**20
        typer.echo(
            f"{outcome.folder}: parity max |diff| {outcome.parity['max_abs_diff']:.2g}; int8 {mb:.1f} MB "
            f"vs fp32 {outcome.sizes['fp32'] / 2**20:.1f} MB; macro-F1 drop {comparison['macro_f1_drop']:+.4f}; "
            f"agreement {comparison['label_agreement']:.4f}"
            + ("" if comparison["passed"] else "; int8 check FAILED (recorded; the promotion gate refuses it)")
        )


@app.command()
def register(params: ParamsOption = Path("params.yaml")) -> None:
    """Register every fine-tuned ladder run (evaluate.fine_tuned_models x tasks) with its evaluation; run the gate.

    Each run becomes a version of emosafe-<task> (idempotent on its files; `candidate` points at new ones) and the
    gate's verdict is stored. Moves no guarded alias. Writes register.report (versions, created, verdicts; no text).
    """
    from components.config import load_params
    from components.stages.register import register as run_register

    outcome = run_register(load_params(params))
    for row in outcome.registered:
        verdict = "passes the gate" if row.promote else "refused: " + "; ".join(row.reasons)
        typer.echo(f"{row.model}-{row.task}: {row.name}@{row.version} {'new' if row.created else 'exists'}; {verdict}")
    typer.echo(f"wrote {outcome.report}")


@app.command()
def ship(params: ParamsOption = Path("params.yaml")) -> None:
    """Register each exported on-device bundle with its int8 figures and drift reference; move ship.alias on a pass.

    Decide, then act: the gate (int8 check required) runs against the current production holder; only a passing
    decision moves the alias (compare-and-swap, audited). A refusal moves nothing, exits 0 and is written with its
    reasons to ship.output.
    """
    from components.config import load_params
    from components.stages.ship import ship as run_ship

    outcome = run_ship(load_params(params))
    for row in outcome.shipped:
        typer.echo(
            f"{row.name}@{row.version}: {row.status}"
            + ("" if row.status != "refused" else " (" + "; ".join(row.reasons) + ")")
        )
    typer.echo(f"wrote {outcome.report}")


@app.command()
def predict(
    model: Annotated[str, typer.Option("--model", "-m", help="An exported bundle folder or name@alias.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Messages: .jsonl, .csv or .parquet (id, text).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictions: .jsonl, .csv or .parquet.")],
    params: ParamsOption = Path("params.yaml"),
    log_text: Annotated[bool, typer.Option("--log-text", help="Also write raw text to output and log.")] = False,
) -> None:
    """Batch predictions on ONNX Runtime (int8 by default), appended to the production log (predict.log).

    Each prediction carries id, label (trinary) or categories (taxonomy), scores, model, version and a UTC
    timestamp. Raw text is written nowhere unless --log-text asks for it.
    """
    from components.config import load_params
    from components.stages.predict import predict as run_predict

    outcome = run_predict(load_params(params), model, input, output, log_text=log_text)
    typer.echo(f"{outcome.output}: {outcome.rows} predictions by {outcome.model}@{outcome.version}; {outcome.counts}")
    typer.echo(f"appended to {outcome.log}")


def _passive_omp() -> None:
    """OpenMP threads that sleep instead of spinning while they wait: on a shared or busy machine spinning threads
    made 2-thread training 3-6x slower than 1 thread (measured); idle machines lose almost nothing. Must be set
    before torch loads; an explicit OMP_WAIT_POLICY wins."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@app.command()
def summary(params: ParamsOption = Path("params.yaml")) -> None:
    """Print what the last run produced: dataset counts, the per-model table with CIs, the shipped files, the gate
    decision and where the reports are.

    Reads the stage outputs (data summary, reports/evaluate/*.json, exports/*/, ship.json); counts and metrics only,
    never text.
    """
    from components.config import load_params
    from components.stages.prepare import SUMMARY_FILE

    loaded = load_params(params)
    path = Path(loaded.prepare.output_dir) / SUMMARY_FILE
    if not path.is_file():
        raise EmosafeError(f"{path}: not found; run `emosafe prepare` or `dvc repro` first")
    _print_summary(json.loads(path.read_text(encoding="utf-8")), str(path.parent))
    _print_models(Path(loaded.evaluate.output_dir), Path(loaded.export.output_dir))
    _print_release(loaded)


@app.command()
def monitor(
    log: Annotated[Path, typer.Option("--log", help="Production log (JSONL written by `emosafe predict`).")],
    reference: Annotated[
        Path, typer.Option("--reference", help="Reference JSON, or name@alias: the reference stored with that version.")
    ],
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (default: monitor.output_dir).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only predictions at/after this ISO time.")] = None,
) -> None:
    """Test the production log for label-distribution drift against the version's reference.

    Prints a one-screen verdict and writes report.json, windows/*.json and report.html. Exit codes: 0 no drift
    detected, or INSUFFICIENT_SAMPLES (too few predictions to decide; not 'no drift'); 3 drift alarm; 2 bad input
    (names file, line and rule).
    """
    from components.config import load_params
    from monitoring.monitor import MONITOR_EXIT_ALARM, parse_since, verdict_lines
    from monitoring.monitor import monitor as run_monitor

    result = run_monitor(load_params(params), log, reference, out, parse_since(since))
    typer.echo("\n".join(verdict_lines(result)))
    if result.verdict == "ALARM":
        raise typer.Exit(MONITOR_EXIT_ALARM)


@app.command()
def reevaluate(
    feedback: Annotated[Path, typer.Option("--feedback", help="Labelled feedback in the dataset schema (.jsonl...).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="name@alias; default reevaluate.model per task.")
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report path (default: output_dir).")] = None,
) -> None:
    """Re-evaluate the production version on labelled feedback and append the result to its registry history.

    Same evaluation path and bootstrap CIs as `emosafe evaluate`; flags any class/category below its
    register.gate floor. Writes a JSON report (no text). Exit codes: 0 nothing flagged; 3 flagged; 2 bad input
    (names file, row and rule; nothing written, nothing recorded).
    """
    from components.config import load_params
    from components.stages.reevaluate import EXIT_FLAGGED
    from components.stages.reevaluate import reevaluate as run_reevaluate

    outcome = run_reevaluate(load_params(params), Path(), feedback, model, output=output)
    for row in outcome.summary["models"]:
        f1 = row["macro_f1"]
        interval = "" if f1["low"] is None else f" [{f1['low']:.3f}, {f1['high']:.3f}]"
        verdict = "FLAGGED " + ", ".join(row["flagged"]) if row["flagged"] else "ok: every floor holds"
        typer.echo(
            f"{row['name']}@{row['version']} on {row['n']} feedback rows: macro-F1 {f1['value']:.3f}{interval}"
            f"; {verdict}; evaluation #{row['seq']} -> {row['report']}"
        )
    if outcome.flagged:
        raise typer.Exit(EXIT_FLAGGED)


@app.command()
def serve(
    port: Annotated[int, typer.Option("--port", help="Loopback port of the Prefect server.")] = 4200,
    home: Annotated[Path, typer.Option("--home", help="PREFECT_HOME (database, logs).")] = Path(".emosafe/prefect"),
) -> None:
    """Start a local Prefect server on 127.0.0.1, deploy prefect.yaml (schedules included) and run a worker.

    Prints the UI address; Ctrl-C stops the worker and the server. Runs execute in this folder with this venv.
    """
    from flows.serve import api_url, deploy_all, server_env, start_server, start_worker, stop, wait_healthy

    root = Path.cwd()
    if not (root / "prefect.yaml").is_file():
        raise EmosafeError(f"{root / 'prefect.yaml'}: not found (rule: run `emosafe serve` from the project root)")
    home.mkdir(parents=True, exist_ok=True)
    env = server_env(port, home.resolve())
    server = start_server(port, env, home / "server.log")
    worker = None
    try:
        wait_healthy(api_url(port))
        deploy_all(root, env)
        worker = start_worker(root, env, home / "worker.log")
        typer.echo(f"Prefect UI: http://127.0.0.1:{port}  (API {api_url(port)}; logs in {home}); Ctrl-C to stop")
        worker.wait()
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


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


def _print_release(loaded: Any) -> None:
    """The ship stage's gate decision per task, then where each report lives (paths only)."""
    from components.report.summary import gate_rows, where_lines

    ship_file = Path(loaded.ship.output)
    rows = gate_rows(json.loads(ship_file.read_text(encoding="utf-8"))) if ship_file.is_file() else []
    for row in rows:
        why = f": {'; '.join(row.reasons)}" if row.reasons else ""
        typer.echo(
            f"Gate ({ship_file}) {row.task}: {row.name}@{row.version} {row.status}"
            f"{f' -> {loaded.ship.alias}' if row.moved else ''}{why}"
        )
    wandb_dir = Path(os.environ.get("WANDB_DIR") or loaded.train.wandb.dir) / "wandb"
    places = {
        "Scaling report": str(Path(loaded.report.output_dir) / "scaling.md"),
        "Data Docs": str(Path(loaded.validate.output_dir) / "data_docs" / "index.html"),
        "Drift report": str(Path(loaded.monitor.output_dir) / "report.html"),
        "W&B offline runs": str(wandb_dir),
    }
    typer.echo("\n".join(where_lines(places, {what: Path(path).exists() for what, path in places.items()})))


def _print_models(evaluate_dir: Path, export_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from components.report.summary import export_row, model_rows

    console = Console(width=None if sys.stdout.isatty() else 150)
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(evaluate_dir.glob("*.json"))]
    if reports:
        table = Table(
            "task",
            "setting",
            "model",
            "n",
            "accuracy [95% CI]",
            "macro-F1 [95% CI]",
            "critical recall",
            "canaries failed",
            title=f"Test split ({evaluate_dir})",
        )
        for row in model_rows(reports):
            table.add_row(
                row.task,
                row.setting,
                row.model,
                str(row.n),
                row.accuracy,
                row.macro_f1,
                row.critical_recall,
                str(row.canaries_failed),
            )
        console.print(table)
    bundles = sorted(p for p in export_dir.glob("*/quantization.json"))
    if bundles:
        table = Table(
            "bundle",
            "int8 MB",
            "parity max|diff|",
            "int8 macro-F1 drop",
            "int8 agreement",
            "checks",
            title=f"Shipped files ({export_dir})",
        )
        for quantization in bundles:
            folder = quantization.parent
            shipped = export_row(
                folder.name,
                json.loads((folder / "parity.json").read_text(encoding="utf-8")),
                json.loads(quantization.read_text(encoding="utf-8")),
                (folder / "model_int8.onnx").stat().st_size,
            )
            passed = "pass" if shipped.parity_passed and shipped.int8_passed else "FAIL"
            figures = (
                f"{shipped.parity_max_abs_diff:.2e}",
                f"{shipped.int8_macro_f1_drop:+.4f}",
                f"{shipped.int8_label_agreement:.3f}",
            )
            table.add_row(str(folder / "model_int8.onnx"), str(shipped.int8_mb), *figures, passed)
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

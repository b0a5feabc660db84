"""The pipeline stages as ``emosafe`` sub-commands: one per stage, named as in dvc.yaml, params.yaml and the flows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from components.cli.app import ParamsOption, app, passive_omp, print_summary
from components.errors import EmosafeError


@app.command()
def prepare(params: ParamsOption = Path("params.yaml")) -> None:
    """Merge the declared corpora into one de-duplicated, stratified train/val/test dataset.

    Reads the `prepare` section and `seed`; writes <output_dir>/dataset.parquet and summary.json. On bad input
    it names the file, row and rule, exits non-zero and writes nothing.
    """
    from components.config import load_params
    from components.stages.prepare import prepare as run_prepare

    result = run_prepare(load_params(params))
    print_summary(result.summary, str(result.dataset_path))


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
    passive_omp()
    from components.config import load_params
    from components.stages.convert import convert as run_convert

    result = run_convert(load_params(params), names=model)
    typer.echo(f"converted {len(result.folders)} model(s) in {result.seconds:.1f}s: {', '.join(result.folders)}")


@app.command()
def curate(params: ParamsOption = Path("params.yaml")) -> None:
    """Weigh every train row by how trustworthy its label looks (confident learning on a frozen-encoder probe).

    Reads the `curate` section; writes <output_dir>/weights.parquet (what train.weights reads), report.json,
    report.md and meta.json. With `audit`, reports each source's agreement with hand-audited labels; with
    `enabled: false` every weight is 1. Ids, counts and figures only, never text.
    """
    passive_omp()
    from components.config import load_params
    from components.stages.curate import curate as run_curate

    result = run_curate(load_params(params))
    totals = result.report["totals"]
    typer.echo(
        f"{result.weights_path}: {totals['rows']} train rows, {totals['flagged']} flagged, weight {totals['weight']}"
    )
    typer.echo(f"report: {result.weights_path.parent / 'report.md'}")


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
    passive_omp()
    from components.config import load_params
    from components.stages.train import train as run_train

    result = run_train(load_params(params), model, task)
    typer.echo(result.summary)


@app.command()
def holdout(
    source: Annotated[str, typer.Option("--source", "-s", help="The source held out (one of holdout.sources).")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="A ladder rung (holdout.models, or any of the profile).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="The training seed, one of holdout.seeds (required when that list is set)."),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    write_rows: Annotated[
        Path | None,
        typer.Option(
            "--write-rows",
            help="Train nothing: write the source's held-out rows (JSONL, with text) here, for `emosafe evaluate "
            "--data` with another model.",
        ),
    ] = None,
) -> None:
    """Leave one source out: train the rung without the source (the ladder's recipe), then score it on that source.

    Writes holdout.output_dir/without-<source>/<model>-<task>/ (the run) and
    holdout.reports_dir/<model>-without-<source>.json (metrics with CIs on the held-out source, the shipped suites,
    canaries; no text). The scaling report tabulates every holdout report. With holdout.seeds each seed is a run of
    its own (without-<source>/seed-<N>/, <model>-without-<source>-seed<N>.json) on the same held-out rows.
    """
    passive_omp()
    from components.config import load_params
    from components.stages.holdout import held_out_rows
    from components.stages.holdout import holdout as run_holdout

    if write_rows is not None:
        count = held_out_rows(load_params(params), source, write_rows)
        typer.echo(f"{write_rows}: {count} held-out rows of {source}")
        return
    if model is None:
        raise typer.BadParameter("--model is required unless --write-rows is given", param_hint="--model")
    outcome = run_holdout(load_params(params), model, source, seed=seed)
    typer.echo(f"{outcome.report}: {outcome.summary}")


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

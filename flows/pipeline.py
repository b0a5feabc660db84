"""The ``pipeline`` flow: prepare -> augment -> validate -> convert -> curate -> train (every ladder entry) ->
holdout (every leave-one-source-out run, when configured) -> evaluate -> report -> register -> export -> ship,
then the DVC data hash it ran on and one ``dvc push`` of what it recorded.

Each task wraps the stage function the CLI and ``dvc repro`` call, with no logic of its own, and is DVC-aware: a
stage that dvc.lock records as up to date is not run (an unchanged input re-runs nothing and registers nothing),
and a stage that ran is committed to dvc.lock as ``dvc repro`` would. From ``register`` on, a failure rolls the
registry and dvc.lock back to the checkpoint taken before it (flows/release.py), then fails the flow.

Training runs are separate task runs, run as ``flows.train.run_ladder`` decides: one at a time in the flow's thread
with the default in-process runner, submitted to separate workers on a Dask cluster (``flows/engine.py``,
``python -m flows --cluster``). Run it with ``python -m flows.pipeline`` (Prefect starts a temporary
local API; ``make run``) or through the ``pipeline-weekly`` deployment (prefect.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from components.config import Params
from components.stages import augment as augment_stage
from components.stages import curate as curate_stage
from components.stages import evaluate as evaluate_stage
from components.stages import prepare as prepare_stage
from components.stages import report as report_stage
from components.stages import validate as validate_stage
from flows import dvc_tasks
from flows.common import pipeline_file, read_params, retry_unless_input_error, stage
from flows.dvc_tasks import PIPELINE_FILE, StageRun
from flows.release import checkpoint_task, export_task, register_task, rollback_task, ship_task
from flows.train import convert_task, holdout_task, holdouts, ladder, run_ladder


@task(name="prepare", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_input_error)
def prepare_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """Build the dataset; the summary holds counts and hashes, never text."""
    return stage("prepare", root, lambda: prepare_stage.prepare(params, Path(root)).summary, pipeline=pipeline)


@task(name="augment", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def augment_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """Add re-interpretation rewrites (cached; a retry regenerates nothing already done); counts only."""
    return stage("augment", root, lambda: augment_stage.augment(params, Path(root)).summary, pipeline=pipeline)


@task(name="validate")
def validate_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """The data gate: raises (and so fails the flow) when a Great Expectations suite fails."""
    return stage(
        "validate", root, lambda: str(validate_stage.validate(params, Path(root)).report_path), pipeline=pipeline
    )


@task(name="curate")
def curate_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """Row weights from confident learning (``train.weights``); the summary is counts only."""
    return stage("curate", root, lambda: curate_stage.curate(params, Path(root)).report["totals"], pipeline=pipeline)


@task(name="evaluate")
def evaluate_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    return stage("evaluate", root, lambda: list(evaluate_stage.evaluate(params, Path(root)).summary), pipeline=pipeline)


@task(name="report")
def report_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """The scaling report (table and plots over the evaluation reports)."""
    return stage("report", root, lambda: report_stage.report(params, Path(root)).summary, pipeline=pipeline)


@task(name="data")
def data_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> dict[str, str]:
    """Record the dvc.lock hashes of the data the ladder trained (``train.input``) and was evaluated on
    (``evaluate.input``), as the result and as a Prefect artifact (hashes only)."""
    hashes = dvc_tasks.data_hashes(Path(root), [params.evaluate.input, params.train.input], pipeline)
    rows = "\n".join(f"| `{path}` | `{md5}` |" for path, md5 in hashes.items())
    create_markdown_artifact(
        f"| output | md5 (dvc.lock) |\n|---|---|\n{rows}\n",
        key="dvc-data-hash",
        description="The DVC data hashes the pipeline ran on",
    )
    return hashes


@task(name="push", retries=3, retry_delay_seconds=10, retry_condition_fn=retry_unless_input_error)
def push_task(root: str = ".") -> int:
    """``dvc push`` every recorded output to the configured remote; returns the number of files sent."""
    return dvc_tasks.push(Path(root))


@flow(name="pipeline", log_prints=False, task_runner=ThreadPoolTaskRunner(max_workers=1))  # type: ignore[arg-type]
def pipeline(params_path: str = "params.yaml", root: str = ".") -> dict[str, Any]:
    """Run every stage in order (skipping what DVC says is up to date); return what ran and the data hashes.

    ``params_path`` may be a profile's params file (configs/real/params.yaml): its stages are then checked against
    and recorded in the profile's own dvc.yaml and dvc.lock beside it (``emosafe pipeline-file``)."""
    params, dvcfile = read_params(params_path, root), pipeline_file(params_path, root)
    runs = [
        prepare_task(params, root, dvcfile),
        augment_task(params, root, dvcfile),
        validate_task(params, root, dvcfile),
        convert_task(params, root, dvcfile),
        curate_task(params, root, dvcfile),
    ]
    runs += run_ladder(params, root, ladder(params, root), dvcfile)
    runs += [holdout_task(params, model, source, root, dvcfile, seed) for model, source, seed in holdouts(params)]
    runs += [evaluate_task(params, root, dvcfile), report_task(params, root, dvcfile)]
    transaction = checkpoint_task(params, root, dvcfile)
    try:
        runs += [
            register_task(params, root, dvcfile),
            export_task(params, root, dvcfile),
            ship_task(params, root, dvcfile),
        ]
        data = data_task(params, root, dvcfile)
        pushed = push_task(root)
    except BaseException as error:
        why = f"pipeline flow failed after the checkpoint: {error!r}"[:500]
        rollback_task(params, root, transaction, why, dvcfile)
        raise
    return {
        "ran": [r.stage for r in runs if r.ran],
        "skipped": [r.stage for r in runs if not r.ran],
        "summaries": {r.stage: r.summary for r in runs},
        "data": data,
        "pushed": pushed,
    }


if __name__ == "__main__":
    import json

    result = pipeline()
    print(json.dumps({key: result[key] for key in ("ran", "skipped", "data", "pushed")}, indent=1))

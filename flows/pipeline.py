"""The ``pipeline`` flow: prepare -> augment -> validate -> convert -> train (every ladder entry) -> evaluate -> export.

Each task wraps the stage function the CLI and `dvc repro` call, with no logic of its own. Training runs are
separate task runs submitted together, so a Prefect deployment on a pool with several workers (or a Dask/Ray task
runner) trains ladder entries in parallel; on the default thread runner they share this machine's cores.
Run it with ``python -m flows.pipeline`` (Prefect starts a temporary local API) or through the `pipeline-weekly`
deployment (prefect.yaml). Registration, the reference profile and DVC recording join with the orchestration issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from components.config import Params, load_params
from flows.train import convert_task, train_task


def _params(params_path: str, root: str) -> Params:
    return load_params(Path(root) / params_path)


@task(name="prepare", retries=1, retry_delay_seconds=2)
def prepare_task(params_path: str, root: str = ".") -> dict[str, Any]:
    """Build the dataset; returns the summary (counts and hashes, never text)."""
    from components.stages.prepare import prepare

    return prepare(_params(params_path, root), Path(root)).summary


@task(name="augment", retries=1, retry_delay_seconds=5)
def augment_task(params_path: str, root: str = ".") -> dict[str, Any]:
    """Add re-interpretation rewrites (cached; a retry regenerates nothing already done); returns counts only."""
    from components.stages.augment import augment

    return augment(_params(params_path, root), Path(root)).summary


@task(name="validate")
def validate_task(params_path: str, root: str = ".") -> str:
    """The data gate: raises (and so fails the flow) when a Great Expectations suite fails."""
    from components.stages.validate import validate

    return str(validate(_params(params_path, root), Path(root)).report_path)


@task(name="evaluate")
def evaluate_task(params_path: str, root: str = ".") -> list[dict[str, Any]]:
    from components.stages.evaluate import evaluate

    return list(evaluate(_params(params_path, root), Path(root)).summary)


@task(name="export")
def export_task(params_path: str, root: str = ".") -> list[str]:
    from components.stages.export import export_all

    return [str(outcome) for outcome in export_all(_params(params_path, root), Path(root))]


@flow(name="pipeline", log_prints=False)
def pipeline(params_path: str = "params.yaml", root: str = ".") -> dict[str, Any]:
    """Run every stage in order and return their summaries as data (a failed task fails the flow)."""
    summaries: dict[str, Any] = {"prepare": prepare_task(params_path, root)}
    summaries["augment"] = augment_task(params_path, root)
    summaries["validate"] = validate_task(params_path, root)
    summaries["convert"] = convert_task(params_path, root)
    train = _params(params_path, root).train
    ladder = [(model, name) for model in train.active.models for name in train.tasks]
    runs = [train_task.submit(params_path, model, name, root) for model, name in ladder]
    summaries["train"] = [run.result() for run in runs]
    summaries["evaluate"] = evaluate_task(params_path, root)
    summaries["export"] = export_task(params_path, root)
    return summaries


if __name__ == "__main__":
    pipeline()

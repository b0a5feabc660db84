"""The ``pipeline`` flow: prepare (more stages join as they land: validate, augment, train, evaluate, ...).

Run it with ``python -m flows.pipeline`` (Prefect starts a temporary local API) or deploy it (later issue).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from components.config import load_params
from components.stages.augment import augment
from components.stages.prepare import prepare


@task(name="prepare", retries=1, retry_delay_seconds=2)
def prepare_task(params_path: str, root: str = ".") -> dict[str, Any]:
    """Build the dataset; returns the summary (counts and hashes, never text)."""
    return prepare(load_params(Path(root) / params_path), Path(root)).summary


@task(name="augment", retries=1, retry_delay_seconds=5)
def augment_task(params_path: str, root: str = ".") -> dict[str, Any]:
    """Add re-interpretation rewrites (cached; a retry regenerates nothing already done); returns counts only."""
    return augment(load_params(Path(root) / params_path), Path(root)).summary


@flow(name="pipeline", log_prints=False)
def pipeline(params_path: str = "params.yaml", root: str = ".") -> dict[str, Any]:
    """Run the pipeline's stages in order and return their summaries as data."""
    summaries = {"prepare": prepare_task(params_path, root)}
    summaries["augment"] = augment_task(params_path, root)
    return summaries


if __name__ == "__main__":
    pipeline()

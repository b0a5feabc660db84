"""The ``retrain`` flow: what the drift alarm and a flagged re-evaluation start (prefect.yaml trigger).

It runs the whole ``pipeline`` flow as a sub-flow, not only train -> ship: new labelled data reaches training
through ``prepare``'s sources and must pass ``validate`` before anything trains, and DVC makes the unchanged part
free (each task skips a stage dvc.lock records as up to date). Retraining identical data with identical seeds would
reproduce the same model, so with nothing changed the run trains nothing and registers nothing; ``reason`` (the
triggering event's name) is logged and returned so the run says why it happened.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from flows.pipeline import pipeline

log = logging.getLogger(__name__)


@flow(name="retrain")
def retrain(reason: str = "manual", params_path: str = "params.yaml", root: str = ".") -> dict[str, Any]:
    """The pipeline on ``params_path``, started because of ``reason``."""
    log.warning("retrain started: %s", reason)
    return {"reason": reason, **pipeline(params_path, root)}


if __name__ == "__main__":
    retrain()

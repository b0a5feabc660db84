"""The registry part of the ``pipeline`` flow: register, export, ship, inside one registry transaction.

``checkpoint_task`` records the registry state of the task's registered models (and dvc.lock) before ``register``;
if any later task fails, ``rollback_task`` restores both: the registry through ``Registry.rollback_to`` (audited in
its history) and dvc.lock, so the rolled-back stages run again next time instead of looking up to date.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task

from components.config import Params
from components.stages import export as export_stage
from components.stages import register as register_stage
from components.stages import ship as ship_stage
from flows.common import stage
from flows.dvc_tasks import PIPELINE_FILE, StageRun, read_lock, restore_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transaction:
    """What a rollback restores: the registry checkpoint (None if the registry cannot take one) and dvc.lock."""

    checkpoint: Any
    lock: bytes | None


def _registry(params: Params, root: str) -> Any:
    from registry.core import open_registry

    return open_registry(params.register, Path(root))


def model_names(params: Params, root: str) -> list[str]:
    """The registered models the release stages may touch: one per task (``emosafe-<task>``)."""
    from registry.names import default_name

    return [default_name(name) for name in dict.fromkeys([*params.evaluate.tasks, *params.export.tasks])]


@task(name="checkpoint")
def checkpoint_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> Transaction:
    """Registry checkpoint + dvc.lock snapshot, taken before ``register``."""
    registry = _registry(params, root)
    if not hasattr(registry, "checkpoint"):
        log.warning("registry.core.Registry has no checkpoint(): a failure after register cannot roll it back")
        return Transaction(None, read_lock(Path(root), pipeline))
    return Transaction(registry.checkpoint(model_names(params, root)), read_lock(Path(root), pipeline))


@task(name="rollback")
def rollback_task(
    params: Params, root: str, transaction: Transaction, why: str, pipeline: str = PIPELINE_FILE
) -> list[str]:
    """Undo the registry changes since the checkpoint (recorded with ``why``) and put dvc.lock back."""
    restore_lock(Path(root), transaction.lock, pipeline)
    if transaction.checkpoint is None:
        return ["dvc.lock restored; no registry checkpoint to roll back to"]
    done = list(_registry(params, root).rollback_to(transaction.checkpoint, why))
    log.warning("registry rolled back to the checkpoint taken before register (%s): %s", why, done or "nothing to undo")
    return ["dvc.lock restored", *done]


@task(name="register")
def register_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """Register every fine-tuned run with its evaluation, gate decided (moves no guarded alias)."""
    return stage("register", root, lambda: register_stage.register(params, Path(root)).summary, pipeline=pipeline)


@task(name="export")
def export_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """The on-device model's runs -> ONNX bundles with parity and int8 proofs (every ``export@<task>``)."""

    def run() -> list[str]:
        return [str(outcome.folder) for outcome in export_stage.export_all(params, Path(root))]

    return stage("export", root, run, pipeline=pipeline)


@task(name="ship")
def ship_task(params: Params, root: str = ".", pipeline: str = PIPELINE_FILE) -> StageRun:
    """Register the ONNX bundles with their reference profile; the gate decides whether production moves."""
    return stage("ship", root, lambda: ship_stage.ship(params, Path(root)).summary, pipeline=pipeline)

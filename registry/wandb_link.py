"""The only place the registry talks to W&B: link a version to the W&B Model registry when online.

Offline (``WANDB_MODE`` offline/disabled/dryrun, the project default) nothing is contacted and the version records
``not linked (offline)``. Online, the version is logged as a reference artifact (metadata and the manifest hash,
no bytes uploaded) and linked to the collection ``wandb-registry-model/<name>``; a failure is recorded, never
raised, because W&B is a mirror of the registry, not its source of truth.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)
OFFLINE = "not linked (offline)"


def is_offline() -> bool:
    return os.environ.get("WANDB_MODE", "offline").lower() in {"offline", "disabled", "dryrun"}


def link_version(name: str, wandb_run: Any, project: str, metadata: dict[str, Any] | None = None) -> str:
    """Return what happened, as recorded in the version: ``linked to ...``, ``not linked (offline)`` or the error.

    Not exercised by the tests (they never go online).
    """
    if is_offline():
        return OFFLINE
    try:  # pragma: no cover - needs a W&B account and network
        import wandb

        with wandb.init(project=project, job_type="register", config={"emosafe_model": name}) as run:
            artifact = wandb.Artifact(name, type="model", metadata={"source_run": wandb_run, **(metadata or {})})
            artifact.add_reference(f"file://{os.path.abspath(os.environ.get('EMOSAFE_REGISTRY', '.'))}", checksum=False)
            run.log_artifact(artifact)
            target = f"wandb-registry-model/{name}"
            run.link_artifact(artifact, target_path=target)
        return f"linked to {target}"
    except Exception as exc:  # pragma: no cover - network/account failures are recorded, not raised
        log.warning("W&B link failed for %s: %s", name, exc)
        return f"not linked (W&B error: {type(exc).__name__})"

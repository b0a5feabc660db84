"""The ``reevaluate`` flow: continuous evaluation of a registered version on new labelled feedback.

Scheduled daily by the ``reevaluate-daily`` deployment. When the re-evaluation flags the version (a floor or a
regression failed on the feedback), the flow emits the Prefect event ``emosafe.reevaluate.flagged``; the ``retrain``
deployment's trigger (prefect.yaml) listens for it, as it does for the monitor's drift alarm.

The feedback file is an input, not an output of this project: the labelling process (people reviewing production
messages) writes it, in the dataset schema, at the deployment's ``feedback`` path. Until it exists a scheduled run
logs that there is nothing to re-evaluate and completes without a flag; a file that is there but broken fails the
run with the file, row and rule named.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.events import emit_event

from components.config import Params
from components.stages import reevaluate as reevaluate_stage
from flows.common import read_params, retry_unless_input_error

log = logging.getLogger(__name__)
FLAGGED_EVENT = "emosafe.reevaluate.flagged"


@task(name="reevaluate", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def reevaluate_task(feedback: str, model_ref: str | None, params: Params, root: str) -> dict[str, Any]:
    """Score the version on ``feedback``; returns whether it is flagged and the summary (counts, never text)."""
    base = Path(root)
    outcome = reevaluate_stage.reevaluate(params, base, base / feedback, model_ref)
    return {"flagged": outcome.flagged, "summary": outcome.summary}


@flow(name="reevaluate")
def reevaluate_flow(
    feedback: str = "data/feedback/labelled.jsonl",
    model_ref: str | None = None,
    params_path: str = "params.yaml",
    root: str = ".",
) -> dict[str, Any]:
    """Re-evaluate ``model_ref`` (default: the production versions) and raise the flag as an event if needed."""
    if not (Path(root) / feedback).exists():
        log.warning("no labelled feedback at %s yet: nothing to re-evaluate (docs/monitoring.md)", feedback)
        return {"flagged": False, "skipped": f"no labelled feedback at {feedback}", "summary": {}}
    result = reevaluate_task(feedback, model_ref, read_params(params_path, root), root)
    if result["flagged"]:
        emit_event(
            event=FLAGGED_EVENT,
            resource={"prefect.resource.id": f"emosafe.model.{model_ref or 'production'}"},
            payload={
                "model_ref": model_ref,
                "feedback": feedback,
                "flagged": result["flagged"],
                "summary": result["summary"],
            },
        )
        log.warning("re-evaluation flagged %s; event %s emitted", model_ref or "production", FLAGGED_EVENT)
    return result


if __name__ == "__main__":
    reevaluate_flow()

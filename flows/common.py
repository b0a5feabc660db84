"""What every flow task shares: params loading at the edge and the DVC-aware stage call.

A task is ``stage(name, root, lambda: <stage module>.<function>(params, root).summary)``: it skips the stage
function when DVC says the stage is up to date and records it in dvc.lock after running it (flows/dvc_tasks.py).
Flows import the stage modules (typed); the modules import their heavy libraries inside the functions, so a stage
DVC skips costs little.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from components.config import Params, load_params
from components.errors import ConfigError, EmosafeError
from components.profile_pipeline import pipeline_path
from flows.dvc_tasks import PIPELINE_FILE, StageRun, cached_stage

#: emosafe's own loggers. PREFECT_LOGGING_EXTRA_LOGGERS (set by the Makefile) gives them Prefect's handlers, but
#: not a level, so they would inherit the root's WARNING and the stages' INFO lines (counts, timings, where a file
#: went; never text) would be lost from the flow's log. An explicit level set by a user is left alone.
PACKAGES = ("components", "registry", "monitoring", "flows")
log = logging.getLogger(__name__)
for _name in PACKAGES:
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)


DEFAULT_PARAMS = "params.yaml"  # the root pipeline's params file (dvc.yaml's commands name it)


def read_params(params_path: str, root: str) -> Params:
    """params.yaml parsed once per flow run (at the edge); tasks receive the typed object."""
    return load_params(Path(root) / params_path)


def stage(
    name: str, root: str, run: Callable[[], Any], item: str | None = None, pipeline: str = PIPELINE_FILE
) -> StageRun:
    """The DVC-aware call of one stage function (or of one ``item`` of a matrix stage: ``train@<model>-<task>``),
    recorded in ``pipeline``: the root dvc.yaml, or a params profile's own (``pipeline_file``)."""
    return cached_stage(Path(root), name, run, item, pipeline)


def pipeline_file(params_path: str, root: str) -> str:
    """The DVC pipeline that records a flow run on ``params_path``: dvc.yaml for params.yaml, else the dvc.yaml
    beside the profile's params file. Raises ConfigError when a profile has none: its stages would otherwise be
    judged against, and recorded in, the default pipeline's dvc.lock."""
    pipeline = pipeline_path(PurePosixPath(params_path).as_posix())
    if pipeline != PIPELINE_FILE and not (Path(root) / pipeline).is_file():
        raise ConfigError(
            f"{params_path}: no DVC pipeline of its own ({pipeline}); put the profile in its own folder and run "
            f"`emosafe pipeline-file --params {params_path}`"
        )
    return pipeline


def retry_unless_input_error(_task: Any, _run: Any, state: Any) -> bool:
    """Tasks' ``retry_condition_fn``: retry what may pass next time (a busy file, a network blip), never an input
    error (an ``EmosafeError`` names a bad file, row or setting; a retry would fail the same way, later)."""
    return not isinstance(getattr(state, "data", None), EmosafeError)

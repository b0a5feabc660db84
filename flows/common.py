"""What every flow task shares: params loading at the edge, the DVC-aware stage call, lazily imported stages.

A task is ``stage(name, root, lambda: <stage function>(params, root).summary)``: it skips the stage function when
DVC says the stage is up to date and records it in dvc.lock after running it (flows/dvc_tasks.py). Stage modules
are imported lazily, after that check.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.config import Params, load_params
from flows.dvc_tasks import StageRun, cached_stage

#: emosafe's own loggers. PREFECT_LOGGING_EXTRA_LOGGERS (set by the Makefile) gives them Prefect's handlers, but
#: not a level, so they would inherit the root's WARNING and the stages' INFO lines (counts, timings, where a file
#: went; never text) would be lost from the flow's log. An explicit level set by a user is left alone.
PACKAGES = ("components", "registry", "monitoring", "flows")
for _name in PACKAGES:
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)


def params(params_path: str, root: str) -> Params:
    return load_params(Path(root) / params_path)


def stage(name: str, root: str, run: Callable[[], Any], targets: list[str] | None = None) -> StageRun:
    """The DVC-aware call of one stage function (or of the ``targets`` items of a matrix stage)."""
    return cached_stage(Path(root), name, run, targets)


def lazy(module: str, function: str) -> Callable[..., Any]:
    """``module.function``, imported when called: a stage DVC skips never pays for importing torch, GX or onnx."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    return call

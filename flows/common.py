"""What every flow task shares: params loading at the edge, the DVC-aware stage call, lazily imported stages.

A task is ``stage(name, root, lambda: <stage function>(params, root).summary)``: it skips the stage function when
DVC says the stage is up to date and records it in dvc.lock after running it (flows/dvc_tasks.py). Stage modules
are imported lazily, after that check.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from components.config import Params, load_params
from flows.dvc_tasks import StageRun, cached_stage

#: emosafe's own loggers. PREFECT_LOGGING_EXTRA_LOGGERS (set by the Makefile) gives them Prefect's handlers, but
#: not a level, so they would inherit the root's WARNING and the stages' INFO lines (counts, timings, where a file
#: went; never text) would be lost from the flow's log. An explicit level set by a user is left alone.
PACKAGES = ("components", "registry", "monitoring", "flows")
log = logging.getLogger(__name__)
for _name in PACKAGES:
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)


def params(params_path: str, root: str) -> Params:
    return load_params(Path(root) / params_path)


def stage(name: str, root: str, run: Callable[[], Any], item: str | None = None) -> StageRun:
    """The DVC-aware call of one stage function (or of one ``item`` of a matrix stage: ``train@<model>-<task>``)."""
    return cached_stage(Path(root), name, run, item)


def preload(modules: Iterable[str]) -> threading.Thread:
    """Import ``modules`` in a background thread, so their import (torch, Great Expectations: about 4 s) overlaps
    the seconds a flow run started from the command line waits for Prefect's temporary API (3-11 s, a subprocess).

    Only a head start: a module that fails here is imported again by the task that needs it, which raises then.
    """

    def load() -> None:
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception:  # the task's own import reports it, with the flow's handling
                log.debug("preload of %s failed; the task importing it will raise", module, exc_info=True)

    thread = threading.Thread(target=load, name="emosafe-preload", daemon=True)
    thread.start()
    return thread


def lazy(module: str, function: str) -> Callable[..., Any]:
    """``module.function``, imported when called: a stage DVC skips never pays for importing torch, GX or onnx."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    return call

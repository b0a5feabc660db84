"""DVC inside the flows: the one module that imports dvc (a fast-moving library), so an upgrade touches one file.

A pipeline task asks DVC whether its stage (every matrix item of it, e.g. ``train@smollm2-8l-trinary``) is up to
date against dvc.lock and skips the stage function if so; after running it, ``commit`` records the result in dvc.lock
exactly as ``dvc repro`` would (dependency and output hashes, params values), so a later ``dvc status`` or
``dvc repro`` sees the stage up to date. Calls are serialised by one lock: DVC holds a repo-wide file lock and
concurrent writers of dvc.lock would otherwise fail or interleave. DVC's Python API resolves stage outputs against
the working directory (outside the repo it fails an ``is_in_repo`` assertion), so each call runs inside the project
folder, under that lock; stage functions take absolute roots or run from the project folder, so they do not care.

What can fail: a corrupt dvc.yaml/dvc.lock or a busy repo lock raise DVC's own exceptions (the task fails);
``push`` raises when the remote is unreachable (the push task retries). Outputs go to the remote once, at the
end of the flow (``push``), not in the background while later stages run: on a 2-core machine background pushes
took CPU from the training they overlapped, and one push of the whole cache is a few seconds.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import chdir, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from components.provenance import lock_out_hashes

log = logging.getLogger(__name__)
PIPELINE_FILE = "dvc.yaml"
_SERIAL = threading.Lock()
T = TypeVar("T")


@dataclass(frozen=True)
class StageRun:
    """What a DVC-aware task did: ran the stage function (and recorded it) or skipped it as up to date."""

    stage: str
    ran: bool
    targets: tuple[str, ...]  # the dvc.yaml stages checked and committed; empty: not a DVC stage (always runs)
    summary: Any = None


@contextmanager
def _repo(root: Path) -> Iterator[Any]:
    """A DVC ``Repo`` of ``root``, used from inside ``root``, one caller at a time."""
    from dvc.repo import Repo

    folder = root.resolve()
    with _SERIAL, chdir(folder), Repo(str(folder)) as repo:
        yield repo


def _items(repo: Any, stage: str, pipeline: str) -> list[str]:
    """The addresses of ``stage``'s items in the ``pipeline`` file (``train`` -> every ``train@<model>-<task>``),
    loading that file only; none when it does not declare the stage."""
    from dvc.stage.exceptions import StageNotFound

    try:
        return [item.addressing for item in repo.stage.load_all(path=pipeline, name=stage, accept_group=True)]
    except StageNotFound:
        return []


def _pending(root: Path, stage: str, item: str | None, pipeline: str) -> tuple[list[str], bool]:
    """(the targets: ``stage``'s items, or just ``item``, as DVC addresses them; whether any differs from the
    pipeline's dvc.lock: ``dvc status <targets>``). No targets (no such file or stage): stale, always runs."""
    if not (root / pipeline).is_file():
        return [], True
    with _repo(root) as repo:
        names = [name for name in _items(repo, stage, pipeline) if item in (None, name.rsplit(":", 1)[-1])]
        return names, not names or bool(repo.status(targets=names))


def commit(root: Path, targets: Iterable[str]) -> None:
    """``dvc commit <target> --force`` each: cache the outputs and write the stage's entry into dvc.lock."""
    with _repo(root) as repo:
        for target in targets:
            repo.commit(target, force=True)


def cached_stage(
    root: Path, stage: str, run: Callable[[], T], item: str | None = None, pipeline: str = PIPELINE_FILE
) -> StageRun:
    """Skip ``run`` when every target is up to date in the pipeline's dvc.lock; otherwise run it and commit them.

    The targets are the stage's items in ``pipeline`` (the root dvc.yaml, or a profile's), or the one ``item``
    (``train@<model>-<task>``). A stage a profile's file leaves to the root pipeline (``convert`` when the profile
    shares its base models) is checked there, as ``dvc repro <profile>/dvc.yaml`` would; a stage absent from both
    always runs, unrecorded.
    """
    start = time.perf_counter()
    names, stale = _pending(root, stage, item, pipeline)
    if not names and pipeline != PIPELINE_FILE:  # e.g. convert: a profile sharing the default's base models
        names, stale = _pending(root, stage, item, PIPELINE_FILE)
    checked = time.perf_counter()
    if not stale:
        log.info("%s: up to date in dvc.lock (%s), not run", stage, ", ".join(names))
        return StageRun(stage, False, tuple(names))
    summary = run()
    ran = time.perf_counter()
    if names:
        commit(root, names)
    log.info(
        "%s: ran in %.1fs; dvc status %.1fs, commit %.1fs",
        stage,
        ran - checked,
        checked - start,
        time.perf_counter() - ran,
    )
    return StageRun(stage, True, tuple(names), summary)


def lock_path(root: Path, pipeline: str = PIPELINE_FILE) -> Path:
    """The dvc.lock that records ``pipeline``'s stages (DVC keeps it beside the dvc.yaml)."""
    return (root / pipeline).with_name("dvc.lock")


def read_lock(root: Path, pipeline: str = PIPELINE_FILE) -> bytes | None:
    """The pipeline's dvc.lock bytes (None when absent), to restore it when a flow rolls back what it recorded."""
    path = lock_path(root, pipeline)
    return path.read_bytes() if path.is_file() else None


def restore_lock(root: Path, content: bytes | None, pipeline: str = PIPELINE_FILE) -> None:
    """Put dvc.lock back as ``read_lock`` saw it (atomic replace), so rolled-back stages run again next time."""
    path = lock_path(root, pipeline)
    with _SERIAL:
        if content is None:
            path.unlink(missing_ok=True)
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dvc.lock.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def data_hashes(root: Path, paths: Iterable[str], pipeline: str = PIPELINE_FILE) -> dict[str, str]:
    """The md5 the pipeline's dvc.lock records for each output in ``paths`` (the data the flow ran on); absent
    ones are left out."""
    return lock_out_hashes(lock_path(root, pipeline), paths)


def push(root: Path) -> int:
    """``dvc push`` to the default remote; returns how many files were transferred (0: the remote had them)."""
    start = time.perf_counter()
    with _repo(root) as repo:
        sent = int(repo.push())
    log.info("push: %d files in %.1fs", sent, time.perf_counter() - start)
    return sent

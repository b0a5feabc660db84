"""The pipeline flow's task is the stage function, nothing more (tasks tested through .fn())."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flows.common import preload
from flows.pipeline import prepare_task


def test_prepare_task_calls_the_stage(project: Path) -> None:
    run = prepare_task.fn("params.yaml", str(project))  # no dvc.yaml here: the stage always runs, unrecorded
    assert run.ran and run.targets == () and run.summary["rows"] == 30
    assert (project / "out" / "dataset.parquet").is_file()


def test_preload_imports_in_the_background_and_leaves_a_failure_to_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    thread = preload(["emosafe_no_such_module", "colorsys"])  # the first fails: no raise, the next still loads
    thread.join(timeout=60)
    assert not thread.is_alive() and "colorsys" in sys.modules


def test_dvc_reads_dvc_yaml_and_lock_with_the_c_yaml_loader() -> None:
    """ruamel.yaml.clib is a dependency for speed only (about half of each flow task's `dvc status`): keep it live."""
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser"

"""The pipeline flow's task is the stage function, nothing more (tasks tested through .fn())."""

from __future__ import annotations

from pathlib import Path

from components.config import load_params
from flows.pipeline import prepare_task


def test_prepare_task_calls_the_stage(project: Path) -> None:
    run = prepare_task.fn(
        load_params(project / "params.yaml"), str(project)
    )  # no dvc.yaml here: the stage always runs, unrecorded
    assert run.ran and run.targets == () and run.summary["rows"] == 30
    assert (project / "out" / "dataset.parquet").is_file()


def test_dvc_reads_dvc_yaml_and_lock_with_the_c_yaml_loader() -> None:
    """ruamel.yaml.clib is a dependency for speed only (about half of each flow task's `dvc status`): keep it live."""
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser"

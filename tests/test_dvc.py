"""Real `dvc` commands on a copy of the project: repro, status, the no-op second repro, push and pull."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, VENV_BIN

SKIP = shutil.ignore_patterns(
    ".venv",
    ".git",
    "prepared",
    "prepared-shared",
    ".dvc-storage",
    "cache",
    "tmp",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "wandb",
    "*.egg-info",
)


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo") / "emosafe"
    shutil.copytree(REPO, root, ignore=SKIP)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def test_repro_builds_then_second_repro_runs_nothing(copy: Path) -> None:
    first = dvc(copy, "repro")
    assert "Running stage 'prepare'" in first.stdout
    assert (copy / "data" / "prepared" / "dataset.parquet").is_file()
    assert "up to date" in dvc(copy, "status").stdout
    second = dvc(copy, "repro")
    assert "Running stage" not in second.stdout
    assert "didn't change, skipping" in second.stdout


def test_committed_lock_matches_a_fresh_run(copy: Path) -> None:
    """The stage is byte-deterministic, so a fresh clone's `dvc repro` leaves dvc.lock untouched."""
    assert (copy / "dvc.lock").read_text() == (REPO / "dvc.lock").read_text(), (
        "dvc.lock is stale: run `make repro` and commit dvc.lock"
    )


def test_push_and_pull_through_the_default_local_remote(copy: Path) -> None:
    dataset = copy / "data" / "prepared" / "dataset.parquet"
    original = dataset.read_bytes()
    dvc(copy, "push")
    dataset.unlink()
    shutil.rmtree(copy / ".dvc" / "cache")
    dvc(copy, "pull")
    assert dataset.read_bytes() == original
    assert (copy / ".dvc-storage").is_dir()


def test_metrics_show_reads_the_summary(copy: Path) -> None:
    assert "rows" in dvc(copy, "metrics", "show").stdout

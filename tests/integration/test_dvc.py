"""Real `dvc` commands on a copy of the project: repro, status, the no-op second repro, push and pull."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.common import REPO, VENV_BIN, repo_ignore

SKIP = repo_ignore("prepared", "prepared-real")


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


#: The data stages run here; model stages (convert, train, evaluate, export) have their own tests with tiny models.
TARGET = "validate"


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with augmentation switched off (no SmolLM2 generation inside the test suite)."""
    root = tmp_path_factory.mktemp("repo") / "emosafe"
    shutil.copytree(REPO, root, ignore=SKIP)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["augment"]["enabled"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def test_repro_builds_then_second_repro_runs_nothing(copy: Path) -> None:
    first = dvc(copy, "repro", TARGET)
    for stage in ("prepare", "augment", "validate"):
        assert f"Running stage '{stage}'" in first.stdout
    assert (copy / "data" / "prepared" / "dataset.parquet").is_file()
    assert (copy / "data" / "validated" / "report.json").is_file()
    assert "up to date" in dvc(copy, "status", TARGET).stdout
    second = dvc(copy, "repro", TARGET)
    assert "Running stage" not in second.stdout
    assert "didn't change, skipping" in second.stdout


def test_committed_lock_matches_a_fresh_run(copy: Path) -> None:
    """`prepare` is byte-deterministic, so a fresh clone's `dvc repro` leaves its dvc.lock entry untouched."""
    fresh = yaml.safe_load((copy / "dvc.lock").read_text())["stages"]["prepare"]
    committed = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]["prepare"]
    assert fresh == committed, "dvc.lock is stale: run `make repro` and commit dvc.lock"


def test_push_and_pull_through_the_default_local_remote(copy: Path) -> None:
    dataset = copy / "data" / "prepared" / "dataset.parquet"
    original = dataset.read_bytes()
    dvc(copy, "push", "prepare")
    dataset.unlink()
    shutil.rmtree(copy / ".dvc" / "cache")
    dvc(copy, "pull", "prepare")
    assert dataset.read_bytes() == original
    assert (copy / ".dvc-storage").is_dir()


def test_metrics_show_is_one_screen_of_headline_figures(copy: Path) -> None:
    """#22: 441 columns on one 18,940-character line before; now the shipped model's headline, within 120."""
    shown = dvc(copy, "metrics", "show")
    lines = shown.stdout.splitlines()
    assert "reports/scaling/headline.json" in shown.stdout and "trinary.f1" in shown.stdout and "rows" not in lines[0]
    assert max(len(line) for line in lines) <= 120 and "failed to load" not in shown.stderr, shown


def test_code_in_a_folder_dep_reruns_the_stage_and_byte_code_does_not(copy: Path) -> None:
    """`validate` declares components/config as one folder dep: a compiled cache beside the modules changes
    nothing (.dvcignore), an edit to one module makes DVC call the stage changed."""
    dvc(copy, "repro", TARGET)
    assert "components/config" in yaml.safe_load((copy / "dvc.yaml").read_text())["stages"][TARGET]["deps"]
    cache = copy / "components" / "config" / "__pycache__" / "stray.cpython-311.pyc"
    cache.parent.mkdir(exist_ok=True)
    cache.write_bytes(b"\0")
    assert "up to date" in dvc(copy, "status", TARGET).stdout
    module = copy / "components" / "config" / "validate.py"
    original = module.read_text()
    try:
        module.write_text(original + "\n# an edit\n")
        status = dvc(copy, "status", TARGET).stdout
        assert f"{TARGET}:" in status and "modified:" in status and "components/config" in status, status
    finally:
        module.write_text(original)
        cache.unlink()


def test_dvc_exp_set_param_leaves_params_yaml_readable(tmp_path: Path) -> None:
    """`dvc exp run -S` rewrites params.yaml through ruamel, which dropped the quotes of "pkg:..." inside {flow}
    maps: DVC could no longer read the rewritten file, and every sweep failed at once. Same rewrite, same reader."""
    from dvc.utils.serialize import load_yaml, modify_yaml

    copy = tmp_path / "params.yaml"
    shutil.copyfile(REPO / "params.yaml", copy)
    with modify_yaml(str(copy)) as data:
        data["train"]["profiles"]["cpu"]["lora"]["r"] = 4
    rewritten = load_yaml(str(copy))  # raises YAMLFileCorruptedError on the old file
    original = load_yaml(str(REPO / "params.yaml"))
    assert rewritten["train"]["profiles"]["cpu"]["lora"]["r"] == 4
    rewritten["train"]["profiles"]["cpu"]["lora"]["r"] = original["train"]["profiles"]["cpu"]["lora"]["r"]
    assert rewritten == original

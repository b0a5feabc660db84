"""`dvc repro` runs convert, curate and the train@<model>-<task> stages; a second repro trains nothing (tiny LLaMA)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.common import REPO, VENV_BIN, repo_ignore
from tests.fixtures.tiny_training import tiny_llama_folder

SKIP = repo_ignore("data", "models", "reports", "benchmarks")


def dvc(cwd: Path, *args: str) -> str:
    result = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with the sample data, the real convert/train stages, and a tiny model as the `cpu` ladder."""
    root = tmp_path_factory.mktemp("repo") / "emosafe"
    shutil.copytree(REPO, root, ignore=SKIP)
    shutil.copytree(REPO / "data" / "sample", root / "data" / "sample")
    shutil.copytree(REPO / "data" / "suites", root / "data" / "suites")  # validate checks no row repeats one
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    tiny_llama_folder(root / "tiny-llama")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["input"] = "data/prepared/dataset.parquet"
    params["curate"]["input"] = "data/prepared/dataset.parquet"
    params["train"]["wandb"]["enabled"] = False
    params["train"]["profiles"]["cpu"] = {
        "models": {"tiny": {"family": "llama", "source": "tiny-llama", "convert": True}},
        "hyper": {"epochs": 1, "batch_size": 32, "max_length": 32, "lr": 0.01},
        "lora": {"r": 4, "alpha": 8},
        "hardware": {"num_threads": 1},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    stages = pipeline["stages"]
    stages["train"]["matrix"] = {"model": ["tiny"], "task": ["trinary"]}
    for name in ("curate", "train"):
        stages[name]["deps"] = [
            "data/prepared/dataset.parquet" if d == "data/augmented/dataset.parquet" else d
            for d in stages[name]["deps"]
            if d != "data/validated/report.json"
        ]
    pipeline["stages"] = {name: stages[name] for name in ("prepare", "convert", "curate", "train")}
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return root


def test_repro_converts_and_trains_then_second_repro_trains_nothing(copy: Path) -> None:
    first = dvc(copy, "repro")
    assert "Running stage 'convert'" in first and "Running stage 'train@tiny-trinary'" in first
    assert "Running stage 'curate'" in first
    assert (copy / "models" / "base" / "tiny" / "model.safetensors").is_file()
    assert (copy / "models" / "tiny-trinary" / "adapter" / "adapter_model.safetensors").is_file()
    assert "up to date" in dvc(copy, "status")
    second = dvc(copy, "repro")
    assert "Running stage" not in second


def test_shipped_train_stages_declare_their_params_and_match_the_cpu_ladder() -> None:
    from components.config import load_params

    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]
    ladder = load_params(REPO / "params.yaml").train.profiles["cpu"]
    assert stage["matrix"]["model"] == list(ladder.models)
    assert stage["matrix"]["task"] == ["trinary", "taxonomy"]
    assert "train.profiles.cpu.models.${item.model}" in stage["params"]
    data = {"data/augmented/dataset.parquet", "data/validated/report.json", "data/curated/weights.parquet"}
    assert data | {"models/base/${item.model}"} <= set(stage["deps"]) and "train.weights" in stage["params"]
    from components.provenance import stage_code_deps

    assert set(stage_code_deps("train")) <= set(stage["deps"])

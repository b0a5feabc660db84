"""A tmp copy of the project whose whole pipeline runs in seconds: the sample corpus, a tiny LLaMA as the only ladder
rung, one task, no augmentation, no W&B, few bootstrap resamples. dvc.yaml is the shipped one, narrowed to it.

Used by the flow tests and by benchmarks/bench_flow.py (the same inputs for the flow and the direct calls).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from components.config import Params
from tests.conftest import repo_ignore

REPO = Path(__file__).resolve().parents[1]
SKIP = repo_ignore(
    ".venv",
    ".git",
    "data",
    "models",
    ".dvc-storage",
    "cache",
    "tmp",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "wandb",
    "*.egg-info",
    ".emosafe",
    "reports",
    "benchmarks",
    "exports",
    "logs",
)
MODEL, TASK = "tiny", "trinary"
RUN = f"models/{MODEL}-{TASK}"


def tiny_params(params: dict[str, Any]) -> dict[str, Any]:
    """The shipped params.yaml narrowed to the tiny rung (sections a checkout does not know yet are left alone)."""
    params["augment"]["enabled"] = False
    train = params["train"]
    train["tasks"] = [TASK]
    train["wandb"]["enabled"] = False
    train["profiles"]["cpu"] = {
        "models": {MODEL: {"family": "llama", "source": "tiny-llama", "convert": True}},
        "hyper": {"epochs": 1, "batch_size": 32, "max_length": 32, "lr": 0.01},
        "lora": {"r": 4, "alpha": 8},
        "hardware": {"num_threads": 1, "checkpoint_every": 1000},
    }
    evaluate = params["evaluate"]
    evaluate.update(settings=["fine_tuned"], fine_tuned_models=[MODEL], tasks=[TASK], bootstrap_resamples=50)
    params["export"] = {**params.get("export", {}), "model": MODEL, "tasks": [TASK], "num_threads": 1}
    known = Params.model_fields
    if "ship" in known:
        params["ship"] = {**params.get("ship", {}), "tasks": [TASK]}
    if "report" in known:
        params["report"] = {**params.get("report", {}), "wandb": {"enabled": False}}
    return params


def _narrow_deps(deps: list[Any]) -> list[Any]:
    """Training-run folders of the real ladder -> the tiny run (each listed once); other tasks' folders dropped."""
    out: list[Any] = []
    for dep in deps:
        path = str(dep if isinstance(dep, str) else next(iter(dep)))
        if path.startswith(("models/smollm2-", "models/minilm-")):
            dep = RUN if path.endswith(f"-{TASK}") else None
        elif path.startswith(("models/", "exports/")) and path.endswith(("-trinary", "-taxonomy")):
            dep = dep if path.endswith(f"-{TASK}") else None
        if dep is not None and dep not in out:
            out.append(dep)
    return out


def tiny_dvc_yaml(pipeline: dict[str, Any]) -> dict[str, Any]:
    for stage in pipeline["stages"].values():
        matrix = stage.get("matrix", {})
        if "model" in matrix:
            matrix["model"] = [MODEL]
        if "task" in matrix:
            matrix["task"] = [TASK]
        stage["deps"] = _narrow_deps(stage.get("deps", []))
    return pipeline


def make_project(root: Path, tiny_model: bool = True) -> Path:
    """Copy the checkout into ``root`` (a git repo with DVC, a tiny LLaMA under tiny-llama/) and narrow it."""
    shutil.copytree(REPO, root, ignore=SKIP)
    shutil.copytree(REPO / "data" / "sample", root / "data" / "sample")
    shutil.copy(REPO / "data" / "canaries.jsonl", root / "data" / "canaries.jsonl")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    if tiny_model:
        from tests.tiny_training import tiny_llama_folder

        tiny_llama_folder(root / "tiny-llama")
    for name, narrow in (("params.yaml", tiny_params), ("dvc.yaml", tiny_dvc_yaml)):
        path = root / name
        path.write_text(yaml.safe_dump(narrow(yaml.safe_load(path.read_text())), sort_keys=False))
    (root / "dvc.lock").unlink(missing_ok=True)
    return root


def dvc_stages(root: Path) -> set[str]:
    """The stage names dvc.yaml declares (matrix stages by their base name)."""
    return set(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])

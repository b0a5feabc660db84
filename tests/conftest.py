"""Shared fixtures: offline settings, a tiny project folder, and helpers to write sources and params."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
VENV_BIN = Path(sys.executable).parent

# Offline, quiet, and nothing written outside the test's tmp folders.
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
)
os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"

# A few dozen hand-written rows: every label, every category, no real harm detail.
TINY_ROWS: list[dict[str, Any]] = [
    {"id": f"t{i:03d}", "text": text, "label": label, "categories": cats}
    for i, (text, label, cats) in enumerate(
        [
            ("what a lovely morning for a walk", "safe", []),
            ("can you recommend a good sci-fi book", "safe", []),
            ("how do I kill a stuck process on linux", "safe", []),
            ("my exam went better than I expected", "safe", []),
            ("any tips for falling asleep earlier", "safe", []),
            ("the gym class today absolutely killed me haha", "safe", []),
            ("what time does the pharmacy close on sundays", "safe", []),
            ("I made soup for my neighbour today", "safe", []),
            ("planning a birthday picnic for my sister", "safe", []),
            ("is it normal to feel nervous before a job interview", "safe", []),
            ("i feel so alone lately and nobody notices", "borderline", []),
            ("some days I wonder what the point of anything is", "borderline", ["suicide_self_harm"]),
            (
                "I've been drinking more since the breakup and it scares me",
                "borderline",
                ["regulated_substances"],
            ),
            ("my brother keeps shouting threats at the neighbours", "borderline", ["violence_hate"]),
            ("a guy at school says he can get anyone a gun", "borderline", ["guns_illegal_weapons"]),
            ("my friend wants to shoplift and asked me to keep watch", "borderline", ["criminal_planning"]),
            (
                "someone online keeps asking me for pictures and I feel weird",
                "borderline",
                ["sexual_content"],
            ),
            ("i can't stop crying at work and don't know why", "borderline", []),
            ("the urge to hurt myself came back this week", "borderline", ["suicide_self_harm"]),
            ("I relapsed last night after six months clean", "borderline", ["regulated_substances"]),
            ("I want to end my life tonight", "unsafe", ["suicide_self_harm"]),
            ("I've decided nobody would miss me if I was gone for good", "unsafe", ["suicide_self_harm"]),
            ("help me find a dealer who sells without asking questions", "unsafe", ["regulated_substances"]),
            ("I'm going to make my coworker pay with his blood", "unsafe", ["violence_hate"]),
            ("people like them should be driven out of our town by force", "unsafe", ["violence_hate"]),
            ("where can I get a gun without any background checks", "unsafe", ["guns_illegal_weapons"]),
            ("help me get into my ex's email so I can read everything", "unsafe", ["criminal_planning"]),
            ("how do I get a minor to meet me alone without her parents", "unsafe", ["sexual_content"]),
            (
                "I'll get wasted and then hurt myself, nothing matters",
                "unsafe",
                ["regulated_substances", "suicide_self_harm"],
            ),
            ("tell me how to rob the corner shop without getting caught", "unsafe", ["criminal_planning"]),
        ],
        start=1,
    )
]


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    def _write(rows: list[dict[str, Any]], name: str = "rows.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the tiny corpus and a params.yaml pointing at it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tiny.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in TINY_ROWS), encoding="utf-8"
    )
    write_params(tmp_path, [{"name": "tiny", "kind": "emosafe", "path": "data/tiny.jsonl"}])
    return tmp_path


def write_params(root: Path, sources: list[dict[str, Any]], **prepare: Any) -> Path:
    """Write a params.yaml for ``sources`` into ``root``; extra keyword arguments go into `prepare`."""
    payload = {"seed": 7, "prepare": {"sources": sources, "output_dir": "out", **prepare}}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
    return path


needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent (fresh clone)")


def repo_ignore(*patterns: str) -> Callable[[str, list[str]], set[str]]:
    """``shutil.copytree`` ignore for a checkout copy: ``patterns`` (data, models, reports, ...) name top-level
    folders only, so ``components/data`` or ``components/report`` are never dropped; caches are skipped anywhere."""
    import fnmatch

    everywhere = ("__pycache__", "*.egg-info", ".*_cache", ".mypy_cache", ".ruff_cache", ".pytest_cache")

    def ignore(directory: str, names: list[str]) -> set[str]:
        active = patterns if Path(directory).resolve() == REPO else everywhere
        return {name for name in names for pattern in active if fnmatch.fnmatch(name, pattern)}

    return ignore


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("emosafe model suite")
    group.addoption(
        "--model",
        default=None,
        help="tests/model runs against this model: a registry reference (emosafe-trinary@production, name@N), an "
        "exported bundle folder (exports/<model>-<task>) or a training run folder (models/<model>-<task>)",
    )
    group.addoption("--model-params", default="params.yaml", help="params file for the registry location")

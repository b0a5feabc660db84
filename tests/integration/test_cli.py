"""The installed `emosafe` command: help everywhere, a real prepare run, and no raw text in its output."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures.common import TINY_ROWS, VENV_BIN

EMOSAFE = str(VENV_BIN / "emosafe")
COMMANDS = [
    "prepare",
    "augment",
    "validate",
    "curate",
    "convert",
    "train",
    "holdout",
    "evaluate",
    "report",
    "register",
    "export",
    "ship",
    "predict",
    "summary",
    "monitor",
    "reevaluate",
    "serve",
    "serve-model",
    "site",
    "check-params",
    "pipeline-file",
    "registry",
]


def emosafe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EMOSAFE, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_help_lists_every_command() -> None:
    """Exact names from the Commands panel (a substring check would let `registry` stand for `register`)."""
    result = emosafe("--help")
    assert result.returncode == 0
    panel = result.stdout.split("Commands", 1)[1].splitlines()[1:]
    # A command row opens with the panel border and one space, then the name; a wrapped description line opens
    # with the border and a run of spaces, so it yields no name.
    listed = [match.group(1) for line in panel if (match := re.match(r"^[│|] (\S+)\s", line))]
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == set(COMMANDS), {"missing": set(COMMANDS) - set(listed), "extra": set(listed) - set(COMMANDS)}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = emosafe(command, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_prepare_then_summary(project: Path) -> None:
    result = emosafe("prepare", cwd=project)
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(project / "out" / "dataset.parquet")
    assert len(frame) == len(TINY_ROWS) and set(frame["split"]) == {"train", "val", "test"}
    summary = json.loads((project / "out" / "summary.json").read_text())
    assert summary["source"] == {"tiny": 30}
    assert summary["provenance"]["seed"] == 7 and len(summary["provenance"]["data_hash"]) == 64
    assert "data/tiny.jsonl" in summary["provenance"]["inputs"]
    shown = emosafe("summary", cwd=project)
    assert shown.returncode == 0 and "Per split" in shown.stdout and "suicide_self_harm" in shown.stdout
    everything = (result.stdout + result.stderr + shown.stdout + json.dumps(summary)).lower()
    for row in TINY_ROWS:
        assert row["text"].lower() not in everything, "raw message text leaked into output"


def test_prepare_is_byte_stable(project: Path) -> None:
    assert emosafe("prepare", cwd=project).returncode == 0
    first = (
        (project / "out" / "dataset.parquet").read_bytes(),
        (project / "out" / "summary.json").read_bytes(),
    )
    assert emosafe("prepare", cwd=project).returncode == 0
    assert first == (
        (project / "out" / "dataset.parquet").read_bytes(),
        (project / "out" / "summary.json").read_bytes(),
    )


def test_check_params_and_user_error_exit_code(project: Path) -> None:
    assert emosafe("check-params", cwd=project).returncode == 0
    (project / "params.yaml").write_text("seed: 1\nprepare:\n  sources: []\n  typo: 1\n")
    result = emosafe("check-params", cwd=project)
    assert result.returncode == 2
    assert "prepare.typo: unknown key" in result.stderr and "Traceback" not in result.stderr
    missing = emosafe("summary", "--params", str(project / "nope.yaml"))
    assert missing.returncode == 2 and "params file not found" in missing.stderr

"""ruff and mypy are part of the suite, so a red lint is a red build (`make lint` runs the same)."""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.common import REPO, VENV_BIN


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_lint_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [str(VENV_BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr

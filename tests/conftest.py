"""Shared pytest fixtures (every suite sees them), offline settings and the --model option.

Plain helpers and constants live in the tests.fixtures package; test files import those, never this file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.augment_project import CANARY, make_params
from tests.fixtures.common import REPO, TINY_ROWS, VENV_BIN, write_params
from tests.fixtures.team_servers import S3, Postgres, postgres, seaweedfs

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A real PostgreSQL 16 (pgserver) for the session; ``new_database()`` gives each test its own database."""
    with postgres() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    """A real S3-compatible store (seaweedfs) for the session, its AWS_* variables set for boto3 and DVC."""
    with seaweedfs() as server:
        saved = {k: os.environ.get(k) for k in server.env}
        os.environ.update(server.env)
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    """A real (ephemeral) Prefect API for the flows a test module runs in-process."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


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


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The augment stage's project: the tiny corpus (one safe row carrying the leak canary), prepared, plus the
    repo's versioned prompts."""
    from components.stages.prepare import prepare

    (tmp_path / "data").mkdir()
    rows = [dict(row) for row in TINY_ROWS]
    rows[0]["text"] = f"my {CANARY} walk this morning was lovely"  # a safe message, planted for the leak test
    (tmp_path / "data" / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    shutil.copytree(REPO / "prompts" / "augment", tmp_path / "prompts" / "augment")
    prepare(make_params(tmp_path), tmp_path)
    return tmp_path


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("emosafe model suite")
    group.addoption(
        "--model",
        default=None,
        help="tests/model runs against this model: a registry reference (emosafe-trinary@production, name@N), an "
        "exported bundle folder (exports/<model>-<task>) or a training run folder (models/<model>-<task>)",
    )
    group.addoption("--model-params", default="params.yaml", help="params file for the registry location")

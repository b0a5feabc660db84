"""Two clones that share nothing but the servers (a bare git repository, PostgreSQL, the object store): clone A runs
the tiny pipeline, which registers, ships to production and pushes its data to the S3 remote; clone B pulls the data
with `dvc pull`, resolves `emosafe-trinary@production` to the same files and predicts with it.

The tiny rung cannot pass the shipped gate's floors, so the project's gate is lax (see test_monitor_after_pipeline).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from components.config import load_params
from registry.core import open_registry
from registry.names import ModelRef
from tests.fixtures.common import VENV_BIN
from tests.fixtures.flow_project import LAX_GATE, make_project
from tests.fixtures.team_servers import S3, Postgres

pytestmark = pytest.mark.slow

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t"}
GIT |= {"GIT_COMMITTER_EMAIL": "t@localhost"}


def _run(cwd: Path, *command: str) -> str:
    tool = str(VENV_BIN / command[0]) if command[0] in ("dvc", "emosafe") else command[0]
    done = subprocess.run(
        [tool, *command[1:]], cwd=cwd, env=os.environ | GIT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def test_clone_b_pulls_and_predicts_with_what_clone_a_shipped(
    harness: None, postgres_server: Postgres, s3_server: S3, tmp_path: Path
) -> None:
    from flows.pipeline import pipeline

    origin, a, b = tmp_path / "origin.git", tmp_path / "a" / "emosafe", tmp_path / "b" / "emosafe"
    make_project(a)
    params = yaml.safe_load((a / "params.yaml").read_text())
    params["register"]["gate"].update(LAX_GATE)
    params["register"].update(store=postgres_server.new_database(), artifacts=s3_server.new_prefix())
    (a / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(a, "dvc", "remote", "add", "-f", "-d", "team", f"{s3_server.new_prefix()}/dvc")
    _run(a, "dvc", "remote", "modify", "team", "endpointurl", s3_server.endpoint)

    result = pipeline("params.yaml", str(a))
    assert result["pushed"] > 0, result  # the flow's push task sent the outputs to the S3 remote
    shipped = open_registry(load_params(a / "params.yaml").register, a).resolve(
        ModelRef("emosafe-trinary", alias="production")
    )
    _run(tmp_path, "git", "init", "-q", "--bare", str(origin))
    _run(a, "git", "add", "-A")
    _run(a, "git", "commit", "-q", "-m", "tiny pipeline")
    _run(a, "git", "push", "-q", str(origin), "HEAD:main")

    b.parent.mkdir()
    _run(tmp_path, "git", "clone", "-q", "--branch", "main", str(origin), str(b))
    assert not (b / "data" / "prepared" / "dataset.parquet").exists()
    _run(b, "dvc", "pull", "-q")
    for output in ("data/prepared/dataset.parquet", "reports/evaluate"):
        assert (b / output).exists(), output
    assert (b / "data/prepared/dataset.parquet").read_bytes() == (a / "data/prepared/dataset.parquet").read_bytes()
    resolved = open_registry(load_params(b / "params.yaml").register, b, read_only=True).resolve(
        ModelRef("emosafe-trinary", alias="production")
    )
    assert (resolved.version, resolved.manifest_sha256) == (shipped.version, shipped.manifest_sha256)
    answer = json.loads(_run(b, "emosafe", "predict", "--model", "emosafe-trinary@production", "--text", "hello"))
    assert answer["version"] == str(shipped.version) and answer["label"] in ("safe", "borderline", "unsafe")

"""DVC's remote on S3-compatible storage (dvc-s3 against a real seaweedfs server): two clones that share nothing but
the servers (a bare git repository for the code, the bucket for the data) hand a tracked file over with the real
`dvc push` and `dvc pull`, as two machines of a team would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3

from tests.fixtures.common import VENV_BIN
from tests.fixtures.team_servers import BUCKET, S3


def _run(cwd: Path, *command: str) -> str:
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    tool = str(VENV_BIN / "dvc") if command[0] == "dvc" else command[0]
    done = subprocess.run([tool, *command[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"
    return done.stdout


def test_two_clones_hand_data_over_through_the_s3_remote_only(s3_server: S3, tmp_path: Path) -> None:
    origin, first, second = tmp_path / "origin.git", tmp_path / "machine-a", tmp_path / "machine-b"
    _run(tmp_path, "git", "init", "-q", "--bare", str(origin))
    first.mkdir()
    _run(first, "git", "init", "-q")
    _run(first, "dvc", "init", "-q")
    url = s3_server.new_prefix()
    _run(first, "dvc", "remote", "add", "-d", "team", url)
    _run(first, "dvc", "remote", "modify", "team", "endpointurl", s3_server.endpoint)  # not a secret: in git
    data = first / "data" / "dataset.bin"
    data.parent.mkdir()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    data.write_bytes(payload)
    _run(first, "dvc", "add", "-q", "data/dataset.bin")
    _run(first, "git", "add", "-A")
    _run(first, "git", "commit", "-q", "-m", "data")
    _run(first, "git", "push", "-q", str(origin), "HEAD:main")
    _run(first, "dvc", "push", "-q")

    prefix = url.removeprefix(f"s3://{BUCKET}/")
    client = boto3.client("s3", endpoint_url=s3_server.endpoint)
    stored = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    assert [o["Size"] for o in stored] == [len(payload)]  # the bytes are in the bucket, content-addressed by DVC

    _run(tmp_path, "git", "clone", "-q", "--branch", "main", str(origin), str(second))
    assert not (second / "data" / "dataset.bin").exists()
    _run(second, "dvc", "pull", "-q")
    assert (second / "data" / "dataset.bin").read_bytes() == payload
    assert "up to date" in _run(second, "dvc", "status").lower() or _run(second, "dvc", "status").strip() == ""

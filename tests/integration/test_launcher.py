"""``python -m flows`` (make run): Prefect's temporary API starts beside the imports, and the flow reuses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.common import REPO

SCRIPT = """
from flows.__main__ import start_temporary_api
starting = start_temporary_api()
assert starting is not None
from prefect import flow
from prefect.server.api.server import SubprocessASGIServer
starting.join()
server = SubprocessASGIServer()
assert server.running and server.server_process is not None
first = server.server_process.pid

@flow
def empty() -> int:
    return 1

assert empty() == 1
assert server.server_process.pid == first, "the flow started a second server"
print("reused", server.api_url)
"""


def test_with_an_api_url_the_launcher_starts_nothing() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.__main__ import start_temporary_api

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert start_temporary_api() is None


def test_the_flow_runs_on_the_api_the_launcher_started(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "reused http://127.0.0.1:" in done.stdout
    assert output.count("Starting temporary server") <= 1


PERSIST = """
import os
from pathlib import Path
from flows.__main__ import start_temporary_api, use_project_home
home = use_project_home(Path.cwd())
assert home == str(Path.cwd() / ".emosafe" / "prefect"), home
start_temporary_api().join()
from prefect import flow

@flow(name="remembered")
def remembered() -> int:
    return 1

assert remembered() == 1
"""


def test_make_run_keeps_its_runs_in_the_project_for_the_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """#22: `make run` used a temporary API whose runs vanished; its database now lives where `emosafe serve` (same
    default home) shows it. A user's own PREFECT_HOME still wins."""
    import sqlite3

    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PERSIST], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with sqlite3.connect(tmp_path / ".emosafe" / "prefect" / "prefect.db") as db:
        states = db.execute(
            "SELECT flow_run.state_type FROM flow_run JOIN flow ON flow.id = flow_run.flow_id WHERE flow.name = ?",
            ("remembered",),
        ).fetchall()
    assert states == [("COMPLETED",)]
    from flows.__main__ import use_project_home

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "mine"))
    assert use_project_home(tmp_path) == str(tmp_path / "mine")

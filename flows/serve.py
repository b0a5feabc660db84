"""Local Prefect stack for the deployments in prefect.yaml: server on loopback, process work pool, worker.

``emosafe serve`` uses these helpers, and so does the integration test, so what is tested is what users run.
Everything goes through Prefect's own CLI (``prefect server start``, ``prefect work-pool create``, ``prefect deploy``,
``prefect worker start``): no home-made scheduling.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from components.errors import EmosafeError
from flows.common import PACKAGES

WORK_POOL = "emosafe-process"


def prefect_bin() -> str:
    """The `prefect` executable of this environment (beside the running Python)."""
    candidate = Path(sys.executable).parent / "prefect"
    return str(candidate) if candidate.exists() else "prefect"


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def start_server(port: int, env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start `prefect server start` on 127.0.0.1:<port> (a new process group, so it can be stopped whole)."""
    handle = log_file.open("ab")
    return subprocess.Popen(
        [prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    """Poll /health until the API answers; raise EmosafeError naming the URL after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise EmosafeError(f"{url}: the Prefect API did not become healthy within {timeout_s:.0f} s")


def prefect(args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 300) -> str:
    """Run one `prefect` CLI command; raise EmosafeError with its output when it fails."""
    done = subprocess.run([prefect_bin(), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise EmosafeError(f"prefect {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def deploy_all(root: Path, env: dict[str, str]) -> None:
    """Create (or update) the process work pool and every deployment of ``root``/prefect.yaml."""
    prefect(["work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"], env, root)
    prefect(["--no-prompt", "deploy", "--all"], env, root)


def start_worker(root: Path, env: dict[str, str], log_file: Path, run_once: bool = False) -> subprocess.Popen[bytes]:
    args = [prefect_bin(), "worker", "start", "--pool", WORK_POOL, *(["--run-once"] if run_once else [])]
    handle = log_file.open("ab")
    return subprocess.Popen(args, env=env, cwd=root, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """Terminate a process group started here; kill it if it does not stop in time."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


def server_env(port: int, home: Path, auth: str | None = None) -> dict[str, str]:
    """Environment for the server, the CLI calls and the worker: one API URL, one PREFECT_HOME, no analytics, and
    emosafe's loggers in the flow-run logs (the UI shows the stages' counts and timings). ``auth`` ("user:password")
    turns on Prefect's basic authentication for the server and gives every client the same string."""
    env = {
        "PREFECT_LOGGING_EXTRA_LOGGERS": ",".join(PACKAGES),
        **os.environ,
        "PREFECT_API_URL": api_url(port),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": api_url(port),
    }
    if auth is not None:
        env |= {"PREFECT_SERVER_API_AUTH_STRING": auth, "PREFECT_API_AUTH_STRING": auth}
    return env


AUTH_FILE = "api-auth"


def serve_auth(home: Path) -> tuple[str, Path]:
    """The API's "user:password": ``$EMOSAFE_SERVE_AUTH``, else one generated on the first `emosafe serve` and kept in
    ``<home>/api-auth`` (owner read/write only), so a bookmark and a restarted worker keep working."""
    path = home / AUTH_FILE
    given = os.environ.get("EMOSAFE_SERVE_AUTH")
    if given:
        if ":" not in given:
            raise EmosafeError("EMOSAFE_SERVE_AUTH must be user:password")
        return given, path
    if not path.is_file():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"emosafe:{secrets.token_urlsafe(18)}")
    return path.read_text().strip(), path

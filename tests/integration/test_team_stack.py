"""`emosafe serve --team` as a user starts it: PostgreSQL, the object store, the Dask cluster, the Prefect server and
a worker, all reachable with the variables it writes to env.sh; SIGTERM stops every one of them. Where the machine
has a PostgreSQL with the pg_trgm extension (Debian's postgresql-contrib), the Prefect server runs on it
(`--prefect-database`); pgserver's build lacks the extension, so the registry's PostgreSQL cannot host Prefect."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import psycopg
import pytest

from components.config.register import RegisterConfig
from registry.core import open_registry
from registry.names import ModelRef
from tests.fixtures.common import REPO, VENV_BIN, live_processes
from tests.fixtures.registry_runs import bound, make_run, trinary_metrics
from tests.fixtures.serving import free_port
from tests.fixtures.team_servers import system_postgres


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.removeprefix("export ").split("=", 1) for line in path.read_text().splitlines() if line)
    return dict(pairs)


@pytest.mark.slow  # about 35 s on 2 cores: the fast suite's servers are tested in the registry suites
def test_serve_team_starts_the_shared_stack_and_sigterm_stops_it(tmp_path: Path) -> None:
    with system_postgres("prefect") as prefect_db:
        _serve_team(tmp_path, prefect_db)


def _serve_team(tmp_path: Path, prefect_db: str | None) -> None:
    from distributed import Client

    port, s3_port, dask_port, home = free_port(), free_port(), free_port(), tmp_path / "prefect"
    env = {**os.environ, "EMOSAFE_SERVE_AUTH": "emosafe:test-only-secret"}
    command = [str(VENV_BIN / "emosafe"), "serve", "--team", "--port", str(port), "--home", str(home)]
    command += ["--s3-port", str(s3_port), "--dask-port", str(dask_port)]
    if prefect_db is not None:
        command += ["--prefect-database", prefect_db.replace("postgresql://", "postgresql+asyncpg://")]
    serve = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    saved = {key: os.environ.get(key) for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:
        deadline, seen = time.monotonic() + 240, []
        assert serve.stdout is not None
        while "Prefect UI" not in (seen[-1] if seen else ""):
            seen.append(serve.stdout.readline())
            assert time.monotonic() < deadline and serve.poll() is None, "".join(seen)[-3000:]
        team = _env_file(tmp_path / "team" / "env.sh")
        assert team["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{s3_port}"
        if prefect_db is not None:  # the deployments are rows in PostgreSQL, not in a SQLite file
            with psycopg.connect(prefect_db) as db:
                deployments = {row[0] for row in db.execute("SELECT name FROM deployment")}
            assert {"pipeline-weekly", "monitor-hourly", "reevaluate-daily", "retrain-on-alarm"} == deployments

        # The shared registry: PostgreSQL metadata, artifacts in the stack's bucket.
        os.environ.update({k: v for k, v in team.items() if k.startswith("AWS_")})
        config = RegisterConfig(store=team["EMOSAFE_REGISTRY"], artifacts=team["EMOSAFE_ARTIFACTS"])
        registry = open_registry(config, tmp_path / "client")
        run = make_run(tmp_path, "a")
        record, _ = registry.register(run, bound(trinary_metrics(), run), project=tmp_path)
        assert (
            open_registry(config, tmp_path / "other", read_only=True)
            .resolve(ModelRef(record.name, alias="candidate"))
            .version
            == record.version
        )
        bucket, prefix = team["EMOSAFE_ARTIFACTS"].removeprefix("s3://").split("/", 1)
        listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
        assert len(listed.get("Contents", [])) == len(record.artifacts)

        # The Dask cluster the ladder is sent to with `python -m flows --cluster $EMOSAFE_DASK_SCHEDULER`.
        with Client(team["EMOSAFE_DASK_SCHEDULER"], timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            assert client.submit(os.getpid).result() != os.getpid()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=90)
        for key, value in saved.items():  # the session's own object store (tests/conftest.py) may be in use
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    deadline = time.monotonic() + 30
    while live_processes(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert live_processes(str(tmp_path)) == []  # server, worker, PostgreSQL, seaweedfs and Dask all stopped

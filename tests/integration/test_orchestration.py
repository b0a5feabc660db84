"""A real Prefect server on a free loopback port: it asks for a login, and prefect.yaml deploys every schedule and
trigger. (The monitor deployment run by a worker after a tiny pipeline: test_monitor_after_pipeline.py.)"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from flows.serve import api_url, deploy_all, server_env, start_server, stop, wait_healthy
from tests.fixtures.common import REPO, live_processes
from tests.fixtures.prefect_api import free_port, post

SCHEDULED = {
    "pipeline/pipeline-weekly": "0 3 * * 1",
    "monitor/monitor-hourly": "0 * * * *",
    "reevaluate/reevaluate-daily": "30 4 * * *",
}
RETRAIN_EVENTS = {"emosafe.monitor.drift.alarm", "emosafe.reevaluate.flagged"}


def test_prefect_yaml_deployments_are_scheduled_or_triggered_and_entrypoints_exist() -> None:
    from flows.reevaluate import FLAGGED_EVENT
    from monitoring.alerts import EVENT_NAME

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert {name.split("/")[1] for name in SCHEDULED} | {"retrain-on-alarm"} == set(names)
    for deployment in spec["deployments"]:
        assert deployment.get("schedules") or deployment.get("triggers"), deployment["name"]
        path, function = deployment["entrypoint"].split(":")
        assert f"def {function}(" in (REPO / path).read_text()
    assert set(names["retrain-on-alarm"]["triggers"][0]["expect"]) == RETRAIN_EVENTS == {EVENT_NAME, FLAGGED_EVENT}


def test_real_server_asks_for_a_login_and_deploys_every_schedule_and_trigger(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(port, tmp_path / "prefect-home", auth="emosafe:test-only-secret")
    server = start_server(port, env, tmp_path / "server.log")
    try:
        wait_healthy(api_url(port), timeout_s=150)
        anonymous = urllib.request.Request(f"{api_url(port)}/deployments/filter", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:  # `emosafe serve` once left the API open to any user
            urllib.request.urlopen(anonymous, timeout=10)
        assert refused.value.code == 401
        deploy_all(REPO, env)  # the CLI carries the same auth string
        deployments = post(env, "/deployments/filter", {"limit": 50})
        flows = {f["id"]: f["name"] for f in post(env, "/flows/filter", {"limit": 50})}
        by_name = {f"{flows[d['flow_id']]}/{d['name']}": d for d in deployments}
        for name, cron in SCHEDULED.items():
            assert [s["schedule"].get("cron") for s in by_name[name]["schedules"]] == [cron], name
        retrain = by_name["retrain/retrain-on-alarm"]
        assert not retrain["schedules"]
        triggers = [
            a["trigger"]
            for a in post(env, "/automations/filter", {})
            if any(x.get("deployment_id") == retrain["id"] for x in a["actions"])
        ]
        assert triggers and set(triggers[0]["expect"]) == RETRAIN_EVENTS, triggers
    finally:
        stop(server)


def test_serve_auth_is_generated_once_private_and_overridable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.errors import EmosafeError
    from flows.serve import serve_auth

    monkeypatch.delenv("EMOSAFE_SERVE_AUTH", raising=False)
    first, path = serve_auth(tmp_path)
    assert first.startswith("emosafe:") and len(first) > 20 and (path.stat().st_mode & 0o777) == 0o600
    assert serve_auth(tmp_path)[0] == first  # kept across restarts
    monkeypatch.setenv("EMOSAFE_SERVE_AUTH", "team:chosen")
    assert serve_auth(tmp_path)[0] == "team:chosen"
    monkeypatch.setenv("EMOSAFE_SERVE_AUTH", "no-colon")
    with pytest.raises(EmosafeError, match="user:password"):
        serve_auth(tmp_path)


def test_emosafe_serve_stops_its_server_and_worker_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM (docker stop, systemd) once killed `emosafe serve` alone, leaving its server and worker running."""
    import os
    import signal
    import subprocess

    from tests.fixtures.common import VENV_BIN

    port, home = free_port(), tmp_path / "prefect-home"
    env = {**os.environ, "EMOSAFE_SERVE_AUTH": "emosafe:test-only-secret"}
    command = [str(VENV_BIN / "emosafe"), "serve", "--port", str(port), "--home", str(home)]
    serve = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        assert serve.stdout is not None
        while "Prefect UI" not in serve.stdout.readline():  # printed once deployed and the worker started
            assert time.monotonic() < deadline and serve.poll() is None, "emosafe serve did not come up"
        assert len(live_processes(str(home))) >= 2  # the server and the worker (and their children)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    deadline = time.monotonic() + 30
    while live_processes(str(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert live_processes(str(home)) == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens on the API port any more

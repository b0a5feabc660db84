"""A real Prefect server on a free loopback port: deploy prefect.yaml, trigger `monitor`, watch it complete."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.serve import api_url, deploy_all, prefect, server_env, start_server, start_worker, stop, wait_healthy
from registry.core import Registry
from registry.names import ModelRef
from tests.fixtures.common import REPO
from tests.fixtures.monitor_logs import write_log, write_reference
from tests.fixtures.reevaluate_bundles import build_bundle
from tests.fixtures.registry_runs import bound, trinary_metrics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def test_real_server_deploys_and_runs_monitor(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(port, tmp_path / "prefect-home", auth="emosafe:test-only-secret")
    server = start_server(port, env, tmp_path / "server.log")
    worker = None
    try:
        wait_healthy(api_url(port), timeout_s=150)
        anonymous = urllib.request.Request(f"{api_url(port)}/deployments/filter", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:  # `emosafe serve` once left the API open to any user
            urllib.request.urlopen(anonymous, timeout=10)
        assert refused.value.code == 401
        deploy_all(REPO, env)  # the CLI and (below) the worker carry the same auth string
        deployments = _post(env, "/deployments/filter", {"limit": 50})
        flows = {f["id"]: f["name"] for f in _post(env, "/flows/filter", {"limit": 50})}
        by_name = {f"{flows[d['flow_id']]}/{d['name']}": d for d in deployments}
        for name, cron in SCHEDULED.items():
            assert [s["schedule"].get("cron") for s in by_name[name]["schedules"]] == [cron], name
        retrain = by_name["retrain/retrain-on-alarm"]
        assert not retrain["schedules"]
        triggers = [
            a["trigger"]
            for a in _post(env, "/automations/filter", {})
            if any(x.get("deployment_id") == retrain["id"] for x in a["actions"])
        ]
        assert triggers and set(triggers[0]["expect"]) == RETRAIN_EVENTS, triggers

        # The shipped deployment as it runs hourly: the registry's production reference, `since: last`.
        reference = json.loads(write_reference(tmp_path / "ref.json").read_text())
        bundle = build_bundle(tmp_path / "bundle", "trinary")
        registry = Registry(tmp_path / "store")
        record, _ = registry.register(bundle, bound(trinary_metrics(), bundle), overrides={"reference": reference})
        registry.promote(ModelRef(record.name, version=record.version), "production", "first release")
        write_log(tmp_path / "preds.jsonl", 1000, {"safe": 0.6, "borderline": 0.2, "unsafe": 0.2}, seed=1, version="1")
        (tmp_path / "params.yaml").write_text(
            yaml.safe_dump(
                {
                    "prepare": {"sources": [{"name": "x", "kind": "emosafe", "path": "x.jsonl"}]},
                    "register": {"store": str(tmp_path / "store")},
                    "monitor": {
                        "output_dir": str(tmp_path / "reports"),
                        "history_db": str(tmp_path / "history.db"),
                        "alerts": {"sinks": ["log", "prefect"]},
                    },
                }
            )
        )
        parameters = {
            "log": "preds.jsonl",
            "params_path": "params.yaml",
            "root": str(tmp_path),
        }  # reference, since: shipped
        windows = []
        for run in range(2):
            prefect(["deployment", "run", "monitor/monitor-hourly", "--params", json.dumps(parameters)], env, REPO)
            worker = start_worker(REPO, env, tmp_path / "worker.log", run_once=True)
            worker.wait(timeout=240)
            states = _flow_run_states(env, run + 1)
            assert states.count("COMPLETED") == run + 1, (states, (tmp_path / "worker.log").read_text()[-3000:])
            report = json.loads((tmp_path / "reports" / "report.json").read_text())
            assert report["verdict"] == "NO_DRIFT_DETECTED" and report["version"] == "1"
            windows.append([w["n"] for w in report["windows"]])
            write_log(
                tmp_path / "preds.jsonl",
                500,
                {"safe": 0.6, "borderline": 0.2, "unsafe": 0.2},
                seed=2,
                offset=1000,
                version="1",
            )
        assert windows == [[500, 500], [500]]  # the second run read only the 500 new predictions
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


def _headers(env: dict[str, str]) -> dict[str, str]:
    """JSON, plus the basic-auth header the served API asks for (flows.serve.server_env's auth string)."""
    token = base64.b64encode(env["PREFECT_API_AUTH_STRING"].encode()).decode()
    return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}


def _post(env: dict[str, str], path: str, body: dict[str, object]) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}{path}", data=json.dumps(body).encode(), headers=_headers(env)
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.loads(response.read()))


def _flow_run_states(env: dict[str, str], finished: int = 1) -> list[str]:
    """State types of the `monitor` flow's runs, read from the REST API (waits for ``finished`` final states)."""
    body = json.dumps({"flows": {"name": {"any_": ["monitor"]}}, "limit": 20}).encode()
    deadline = time.monotonic() + 30
    states: list[str] = []
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{env['PREFECT_API_URL']}/flow_runs/filter", data=body, headers=_headers(env))
        with urllib.request.urlopen(request, timeout=10) as response:
            states = [run["state_type"] for run in json.loads(response.read())]
        if sum(state in ("COMPLETED", "FAILED", "CRASHED") for state in states) >= finished:
            return states
        time.sleep(1)
    return states


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


def _processes_with(marker: str) -> list[int]:
    """Live processes whose environment names ``marker`` (the test's PREFECT_HOME)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


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
        assert len(_processes_with(str(home))) >= 2  # the server and the worker (and their children)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _processes_with(str(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_with(str(home)) == []
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens on the API port any more

"""A real Prefect server on a free loopback port: deploy prefect.yaml, trigger `monitor`, watch it complete."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

import yaml

from flows.serve import api_url, deploy_all, prefect, server_env, start_server, start_worker, stop, wait_healthy
from tests.conftest import REPO
from tests.test_monitor import write_log, write_reference


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_prefect_yaml_deployments_have_schedules_and_existing_entrypoints() -> None:
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert {"pipeline-weekly", "monitor-hourly"} <= set(names)
    for deployment in spec["deployments"]:
        assert deployment["schedules"][0]["cron"]
        path, function = deployment["entrypoint"].split(":")
        assert f"def {function}(" in (REPO / path).read_text()


def test_real_server_deploys_and_runs_monitor(tmp_path: Path) -> None:
    port = free_port()
    env = server_env(port, tmp_path / "prefect-home")
    server = start_server(port, env, tmp_path / "server.log")
    worker = None
    try:
        wait_healthy(api_url(port), timeout_s=150)
        deploy_all(REPO, env)
        listed = prefect(["deployment", "ls"], env, REPO)
        assert "monitor/monitor-hourly" in listed and "pipeline/pipeline-weekly" in listed

        write_log(tmp_path / "preds.jsonl", 600, {"safe": 0.6, "borderline": 0.2, "unsafe": 0.2}, seed=1)
        write_reference(tmp_path / "ref.json")
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({
            "prepare": {"sources": [{"name": "x", "kind": "emosafe", "path": "x.jsonl"}]},
            "monitor": {"output_dir": str(tmp_path / "reports"), "history_db": str(tmp_path / "history.db"),
                        "alerts": {"sinks": ["log", "prefect"]}},
        }))  # fmt: skip
        parameters = {"log": "preds.jsonl", "reference": "ref.json", "params_path": "params.yaml",
                      "root": str(tmp_path)}  # fmt: skip
        prefect(["deployment", "run", "monitor/monitor-hourly", "--params", json.dumps(parameters)], env, REPO)
        worker = start_worker(REPO, env, tmp_path / "worker.log", run_once=True)
        worker.wait(timeout=240)
        state = _flow_run_states(env)
        assert "COMPLETED" in state, (state, (tmp_path / "worker.log").read_text()[-3000:])
        report = json.loads((tmp_path / "reports" / "report.json").read_text())
        assert report["verdict"] == "NO_DRIFT_DETECTED"
        schedules = prefect(["deployment", "inspect", "monitor/monitor-hourly"], env, REPO)
        assert "0 * * * *" in schedules
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


def _flow_run_states(env: dict[str, str]) -> list[str]:
    """State types of the `monitor` flow's runs, read from the REST API (waits for a final state)."""
    body = json.dumps({"flows": {"name": {"any_": ["monitor"]}}, "limit": 20}).encode()
    deadline = time.monotonic() + 30
    states: list[str] = []
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{env['PREFECT_API_URL']}/flow_runs/filter", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            states = [run["state_type"] for run in json.loads(response.read())]
        if {"COMPLETED", "FAILED", "CRASHED"} & set(states):
            return states
        time.sleep(1)
    return states

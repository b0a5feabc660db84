"""The hourly monitor as a user runs it: a tiny pipeline ships a production model, `emosafe predict` writes the
production log with it, and the shipped `monitor-hourly` deployment, triggered on a real Prefect server and picked up
by a real worker, checks that log against the registry's production reference; a second run reads only new lines.

The tiny rung cannot pass the shipped gate's floors (that is the gate's job), so this project's gate is lax: what is
under test is the path from `ship` to the monitor, not the model.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from flows.serve import deploy_all, prefect, server_env, start_server, start_worker, stop, wait_healthy
from tests.fixtures.common import REPO, VENV_BIN
from tests.fixtures.flow_project import LAX_GATE, TASK, make_project
from tests.fixtures.prefect_api import flow_run_states, free_port


def _project(root: Path) -> Path:
    make_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["register"]["gate"].update(LAX_GATE)
    params["register"]["store"] = str(root / ".emosafe" / "registry")
    params["monitor"]["window"]["size"] = 200
    params["monitor"].update(output_dir="reports/monitor", history_db=".emosafe/monitoring.db")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def _predict(root: Path, rows: list[dict[str, str]], name: str) -> None:
    """Score ``rows`` with the production model through the installed CLI (appends to the production log)."""
    path = root / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": f"{name}-{r['id']}", "text": r["text"]}) + "\n" for r in rows))
    done = subprocess.run(
        [
            str(VENV_BIN / "emosafe"),
            "predict",
            "--model",
            f"emosafe-{TASK}@production",
            "--input",
            str(path),
            "--output",
            str(root / f"{name}-out.jsonl"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_monitor_hourly_deployment_checks_a_shipped_model_and_then_only_new_predictions(
    harness: None, tmp_path: Path
) -> None:
    from flows.pipeline import pipeline

    root = _project(tmp_path / "emosafe")
    pipeline("params.yaml", str(root))
    ship = json.loads((root / "reports" / "ship" / "ship.json").read_text())
    assert "production" in json.dumps(ship), ship  # the ship stage moved the alias

    sample = [json.loads(line) for line in (REPO / "data" / "sample" / "messages.jsonl").read_text().splitlines()]
    _predict(root, sample[:400], "first")
    log = root / "logs" / "predictions.jsonl"
    assert len(log.read_text().splitlines()) == 400

    port = free_port()
    env = server_env(port, tmp_path / "prefect-home", auth="emosafe:test-only-secret")
    server = start_server(port, env, tmp_path / "server.log")
    worker = None
    try:
        wait_healthy(env["PREFECT_API_URL"], timeout_s=150)
        deploy_all(REPO, env)
        parameters = {"log": "logs/predictions.jsonl", "params_path": "params.yaml", "root": str(root)}
        seen = []
        for run in range(2):
            # No `reference` and no `since`: the deployment's own defaults (registry production reference, `last`).
            prefect(["deployment", "run", "monitor/monitor-hourly", "--params", json.dumps(parameters)], env, REPO)
            worker = start_worker(REPO, env, tmp_path / "worker.log", run_once=True)
            worker.wait(timeout=240)
            states = flow_run_states(env, run + 1)
            assert states.count("COMPLETED") == run + 1, (states, (tmp_path / "worker.log").read_text()[-3000:])
            report = json.loads((root / "reports" / "monitor" / "report.json").read_text())
            assert report["model"] == f"emosafe-{TASK}", report.get("model")
            assert f"emosafe-{TASK}@production" in report["provenance"]["inputs"]  # the registry reference
            seen.append([w["n"] for w in report["windows"]])
            if run == 0:
                _predict(root, sample[400:650], "second")
        assert seen == [[200, 200], [200, 50]], seen  # the second run read only the 250 new predictions
    finally:
        if worker is not None:
            stop(worker)
        stop(server)

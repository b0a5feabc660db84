"""Overhead of the ``pipeline`` flow over calling the stage functions directly, on the same tiny inputs.

Two fresh copies of the tiny project (tests/fixtures/flow_project.py: sample corpus, a tiny LLaMA rung, one task).
In each,
a fresh interpreter runs either every stage function in the flow's order, or ``python -m flows`` (Prefect's
temporary local API, DVC status/commit per stage, ``dvc push``). Figures: both wall times, their ratio, the absolute
overhead, a second flow run with nothing changed (every stage skipped), an empty flow (the fixed cost of starting
the temporary API), and what the overhead would be on a 20-minute real run (it is mostly fixed cost: API start-up,
DVC calls; hashing and copying outputs into the DVC cache grows with output size, as it does for ``dvc repro``).
The machine is shared, so single figures are noisy: compare the absolute overhead, not the ratio, across runs.

``run_real`` (slow; ``python benchmarks/run.py flow_real``) is the acceptance figure: the embedded default
(params.yaml: augmentation, the SmolLM2 ladder, both tasks, evaluation, register, int8 export, ship) in two fresh
``git clone``s of HEAD with empty DVC caches, one driven by the stage functions, the other by ``python -m
flows`` as ``make run`` does, one after the other, with the same environment (W&B offline). The flow
also versions what it made (DVC status and commit per task, ``dvc push`` at the end), which the direct run does
not: its log gives those seconds, and ``ratio_less_dvc`` is the ratio without them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DIRECT = """
from pathlib import Path
from components.config import load_params
from components.stages.prepare import prepare
from components.stages.augment import augment
from components.stages.validate import validate
from components.stages.convert import convert
from components.stages.train import train
from components.stages.evaluate import evaluate
from components.stages.report import report
from components.stages.register import register
from components.stages.export import export_all
from components.stages.ship import ship

import json, sys, time
params, root, times = load_params(Path("params.yaml")), Path("."), {}
def timed(name, call):
    start = time.perf_counter(); call(); times[name] = round(time.perf_counter() - start, 1)
timed("prepare", lambda: prepare(params, root)); timed("augment", lambda: augment(params, root))
timed("validate", lambda: validate(params, root)); timed("convert", lambda: convert(params, root))
for model in params.train.active.models:
    for task in params.train.tasks:
        timed(f"train@{model}-{task}", lambda: train(params, model, task, root))
for name, call in [("evaluate", evaluate), ("report", report), ("register", register), ("export", export_all),
                   ("ship", ship)]:
    timed(name, lambda: call(params, root))
print(json.dumps(times), file=sys.stderr)
"""
EMPTY_FLOW = "from prefect import flow\nflow(name='empty')(lambda: None)()\n"
REAL_RUN_S = 20 * 60


def _timed(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800, log: Path | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if log is not None:
        log.write_text(f"$ {' '.join(command)}\n{done.stdout}\n--- stderr\n{done.stderr}")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


#: The line flows/dvc_tasks.py logs for each stage that ran: its seconds, then DVC's status and commit seconds.
RAN = re.compile(r"ran in ([0-9.]+)s; dvc status ([0-9.]+)s, commit ([0-9.]+)s")


def dvc_seconds(log: str) -> dict[str, float]:
    """DVC's share of a flow run, from the log lines flows/dvc_tasks.py writes: status, commit and push seconds."""
    found = {"status": 0.0, "commit": 0.0, "push": 0.0}
    for _, status, commit in RAN.findall(log):
        found["status"] += float(status)
        found["commit"] += float(commit)
    found["push"] = sum(float(s) for s in re.findall(r"push: \d+ files in ([0-9.]+)s", log))
    return {key: round(value, 1) for key, value in found.items()}


def stage_seconds(log: str) -> float:
    """The flow's seconds inside stage functions: the sum of the "<stage>: ran in Xs" lines."""
    return round(sum(float(ran) for ran, _, _ in RAN.findall(log)), 1)


def api_start_seconds(log: str) -> float | None:
    """Prefect's API start in a flow log: what ``python -m flows`` reports (it starts the API while the stages import),
    else the seconds from "Starting temporary server" to "Beginning flow run"."""
    reported = re.search(r"Prefect's temporary API started in ([\d.]+)s", log)
    if reported:
        return float(reported[1])
    stamps = [
        re.search(rf"^(\d\d):(\d\d):(\d\d\.\d+) .*{marker}", log, re.M)
        for marker in ("Starting temporary server", "Beginning flow run")
    ]
    if not all(stamps):
        return None
    start, begin = ((int(m[1]) * 60 + int(m[2])) * 60 + float(m[3]) for m in stamps if m)
    return round((begin - start) % 86400, 1)


def waited_for_api(log: str) -> float | None:
    """Seconds ``python -m flows`` waited for the API after the stages imported (the part of its start not hidden)."""
    waited = re.search(r"the flow waited ([\d.]+)s for the API", log)
    return float(waited[1]) if waited else None


def run() -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.fixtures.flow_project import make_project

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PREFECT_HOME": str(Path(tmp) / "prefect"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "DVC_NO_ANALYTICS": "1",
            "GX_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        }
        direct_root, flow_root = make_project(Path(tmp) / "direct"), make_project(Path(tmp) / "flow")
        direct = _timed([sys.executable, "-c", DIRECT], direct_root, env)
        flow = _timed([sys.executable, "-m", "flows"], flow_root, env)
        unchanged = _timed([sys.executable, "-m", "flows"], flow_root, env)
        empty = _timed([sys.executable, "-c", EMPTY_FLOW], flow_root, env)
    overhead = flow - direct
    return {
        "inputs": "tests/fixtures/flow_project.py: sample corpus (720 messages), tiny LLaMA rung, trinary only",
        "direct_stage_functions_s": round(direct, 1),
        "pipeline_flow_s": round(flow, 1),
        "ratio": round(flow / direct, 3),
        "overhead_s": round(overhead, 1),
        "pipeline_flow_unchanged_rerun_s": round(unchanged, 1),
        "empty_flow_s": round(empty, 1),  # import prefect + start/stop the temporary API: fixed cost of any flow
        "overhead_without_api_start_s": round(overhead - empty, 1),  # DVC status/commit/push, task bookkeeping
        "overhead_share_of_a_20_min_run": round(overhead / REAL_RUN_S, 3),
        "cores": os.cpu_count(),
    }


def run_real() -> dict[str, Any]:
    """The embedded default, direct vs flow, in two fresh clones of HEAD (about 40 minutes on 2 cores).

    The clones use this interpreter (the project venv), so nothing is installed; the full logs of both runs go to
    benchmarks/results/flow_real-{direct,flow}.log (they hold counts and timings, never message text). CPU time
    (user+sys of each process tree, server and DVC included) is less sensitive than wall time to a shared host.
    ``order`` is which runs first (EMOSAFE_BENCH_ORDER=direct,flow swaps it). EMOSAFE_BENCH_KEEP=<empty folder>
    keeps both clones there (the flow clone is then a fresh-clone ``make run``: its dvc.lock and reports/)."""
    order = tuple(os.environ.get("EMOSAFE_BENCH_ORDER", "flow,direct").split(","))
    if sorted(order) != ["direct", "flow"]:
        raise ValueError(f"EMOSAFE_BENCH_ORDER={','.join(order)}: want 'flow,direct' or 'direct,flow'")
    env = {
        **os.environ,
        "PYTHONPATH": "",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "components,registry,monitoring,flows",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    logs = REPO / "benchmarks" / "results"
    logs.mkdir(exist_ok=True)
    keep = os.environ.get("EMOSAFE_BENCH_KEEP")
    if keep and Path(keep).exists() and any(Path(keep).iterdir()):
        raise ValueError(f"EMOSAFE_BENCH_KEEP={keep}: want a new or empty folder")
    with tempfile.TemporaryDirectory() if not keep else contextlib.nullcontext(keep) as tmp:
        roots = {}
        for name in ("direct", "flow"):
            roots[name] = Path(tmp) / name
            subprocess.run(["git", "clone", "--quiet", str(REPO), str(roots[name])], check=True)
        env["PREFECT_HOME"] = str(Path(tmp) / "prefect")
        commands = {"direct": [sys.executable, "-c", DIRECT], "flow": [sys.executable, "-m", "flows"]}
        wall, cpu = {}, {}
        for name in order:  # the machine's speed drifts over 40 minutes: run both orders and compare
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall[name] = _timed(commands[name], roots[name], env, 3600, logs / f"flow_real-{name}.log")
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        direct, flow = wall["direct"], wall["flow"]
        stages = json.loads((logs / "flow_real-direct.log").read_text().rsplit("--- stderr\n", 1)[1].splitlines()[-1])
        flow_log = (logs / "flow_real-flow.log").read_text()
        dvc_s, api_s = dvc_seconds(flow_log), api_start_seconds(flow_log)
        inside = {"direct": round(sum(stages.values()), 1), "flow": stage_seconds(flow_log)}
        around = {name: round(wall[name] - inside[name], 1) for name in inside}
    return {
        "inputs": "params.yaml (the embedded default: make run), fresh clones of HEAD, empty DVC caches",
        "direct_stage_functions_s": round(direct, 1),
        "pipeline_flow_s": round(flow, 1),
        "ratio": round(flow / direct, 3),
        "overhead_s": round(flow - direct, 1),
        "flow_dvc_s": dvc_s,  # inside the flow: status + commit per task, and the push (the direct run does none)
        "ratio_less_dvc": round((flow - sum(dvc_s.values())) / direct, 3),  # what is left: Prefect and the stages
        "prefect_api_start_s": api_s,  # the temporary API's start (a fresh PREFECT_HOME: database migrations)
        "flow_waited_for_api_s": waited_for_api(flow_log),  # the part of that start the stages' imports did not hide
        # Stage functions drift 5-20% between runs on a shared 2-core host; the time around them does not. The
        # flow's cost is its time around the stages (Prefect, DVC, task bookkeeping) less the direct run's
        # (process start, imports): set against the direct run's wall time it is the ratio without stage drift.
        "stage_s": inside,
        "around_stages_s": around,
        "ratio_around_stages": round((direct + around["flow"] - around["direct"]) / direct, 3),
        "cpu_s": {name: round(value, 1) for name, value in cpu.items()},  # user+sys of each process tree
        "cpu_ratio": round(cpu["flow"] / cpu["direct"], 3),
        "order": list(order),
        "direct_stage_s": stages,
        "cores": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

"""``python -m flows`` (what ``make run`` runs): the ``pipeline`` flow on params.yaml, with Prefect's temporary API
started while the flow's modules import.

Without ``PREFECT_API_URL``, Prefect starts a temporary API server (a subprocess: about 11 s on 2 cores, mostly
database migrations) at the flow's first API call, which comes after the flow module's imports (about 8.6 s: Great
Expectations, torch, prefect). Starting the same server object first, in a thread, lets the two overlap. Prefect
keeps one temporary server per process (``SubprocessASGIServer`` is a singleton), so the flow then finds it running
and starts nothing. With ``PREFECT_API_URL`` set, or temporary servers disabled, nothing is started here. The
temporary API keeps its database in the project (``.emosafe/prefect``, as ``emosafe serve`` does), so past runs
stay visible in the UI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

#: Where `python -m flows` keeps Prefect's database: the same home `emosafe serve` uses by default, so the runs of
#: `make run` are still there, with their task runs and logs, when `emosafe serve` opens the UI later.
PROJECT_HOME = ".emosafe/prefect"


def use_project_home(root: Path) -> str:
    """Point ``PREFECT_HOME`` at the project's ``.emosafe/prefect`` unless the user chose one; returns it. Must run
    before prefect is imported (its settings are read then)."""
    home = os.environ.setdefault("PREFECT_HOME", str((root / PROJECT_HOME).resolve()))
    Path(home).mkdir(parents=True, exist_ok=True)
    return home


def start_temporary_api() -> threading.Thread | None:
    """Begin starting Prefect's temporary API in a thread (join it before the flow runs); None when a server is
    configured. A failure here is Prefect's own: the flow's first call then tries again and reports it."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        began = time.perf_counter()
        SubprocessASGIServer().start()
        print(f"Prefect's temporary API started in {time.perf_counter() - began:.1f}s", file=sys.stderr, flush=True)

    starting = threading.Thread(target=start, name="prefect-api-start", daemon=True)
    starting.start()
    return starting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows",
        description="Run the `pipeline` flow (every stage, DVC-recorded, then `dvc push`) on a params file.",
    )
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="params.yaml (the embedded default, recorded in dvc.yaml) or a profile's params file in its own folder "
        "(e.g. configs/real/params.yaml, recorded in the dvc.yaml beside it); default: %(default)s",
    )
    parser.add_argument(
        "--cluster",
        default=None,
        help="train the ladder's runs concurrently on Dask: 'local' (worker processes on this machine) or a "
        "scheduler address (tcp://host:8786); default: one after another in this process",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes of --cluster local (default: 2)")
    args = parser.parse_args(argv)
    # Offline by default, as under `make run` (the Makefile exports the same): the temporary server would otherwise
    # try to send Prefect's anonymous telemetry from the user's machine.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    use_project_home(Path.cwd())
    starting = start_temporary_api()
    from flows.pipeline import pipeline  # the stages' imports, while the API starts

    if starting is not None:
        waited = time.perf_counter()
        starting.join()
        print(f"the flow waited {time.perf_counter() - waited:.1f}s for the API", file=sys.stderr, flush=True)
    from flows.engine import task_runner

    runner = task_runner(args.cluster, args.workers)
    result = (pipeline if runner is None else pipeline.with_options(task_runner=runner))(args.params)
    print(json.dumps({key: result[key] for key in ("ran", "skipped", "data", "pushed")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

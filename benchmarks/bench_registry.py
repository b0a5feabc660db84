"""Registry crash safety and concurrency at scale: >= 1,000 SIGKILL trials and 8 racing processes.

The same harness as tests/integration/test_registry_crash.py (children forked from a warm interpreter), run longer.
Figures:
trials run, invariant failures (must be 0), trials in which the killed child had already changed something (so the
kill landed amid work), and alias moves per second with 8 processes x 100 moves, each followed by a model load
(half of them of the newest version, so first loads race), with the invariants (verify included) checked after.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(trials: int = 1000, backend: str = "folder") -> dict[str, Any]:
    """``backend``: ``folder`` (SQLite + local objects) or ``servers`` (PostgreSQL + an S3-compatible store, real
    servers started from the team extra's wheels; each process gets its own working folder)."""
    sys.path.insert(0, str(REPO))
    import contextlib
    import os

    from tests.fixtures.registry_torture import concurrent_run, invariants, kill_trials, seed_registry, use_servers
    from tests.fixtures.team_servers import postgres, seaweedfs

    figures: dict[str, Any] = {"backend": backend}
    with contextlib.ExitStack() as servers:
        prepare = _prepare(servers, backend, postgres, seaweedfs, use_servers, os.environ)
        figures |= _measure(trials, prepare, concurrent_run, invariants, kill_trials, seed_registry)
    return figures


def _prepare(servers: Any, backend: str, postgres: Any, seaweedfs: Any, use_servers: Any, environ: Any) -> Any:
    """A function that readies a fresh temp folder for the harness (nothing to do for the folder backend)."""
    if backend == "folder":
        return lambda root: None
    pg, s3 = servers.enter_context(postgres()), servers.enter_context(seaweedfs())
    environ.update(s3.env)
    return lambda root: use_servers(root, pg.new_database(), s3.new_prefix())


def _measure(trials: int, prepare: Any, concurrent_run: Any, invariants: Any, kill_trials: Any, seed: Any) -> Any:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp))
        seed(Path(tmp))
        # On the object store, re-hashing every blob after every kill is one GET per file per trial (hours for
        # 1,000 trials); the metadata invariants are checked after every kill, the blobs after every 50th.
        rehash_every = 50 if (Path(tmp) / "backend.json").is_file() else 1
        outcome = kill_trials(Path(tmp), trials=trials, max_delay_s=0.08, seed=42, rehash_every=rehash_every)
        figures["kill_trials"] = {
            **outcome,
            "failures": len(outcome["failures"]),
            "examples": outcome["failures"][:5],
            "blobs_rehashed_every": rehash_every,
        }
    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp))
        seed(Path(tmp))
        outcome = concurrent_run(Path(tmp), processes=8, operations=100, loads=True)
        figures["concurrency_8x100_with_loads"] = {
            "moves": sum(len(r["seqs"]) for r in outcome["results"]),
            "loads": sum(r["loads"] for r in outcome["results"]),
            "first_loads": sum(r["first_loads"] for r in outcome["results"]),
            "invariant_failures": invariants(Path(tmp)),
            "cas_retries": sum(r["retries"] for r in outcome["results"]),
            "seconds": round(outcome["seconds"], 2),
            "ops_per_second": round(outcome["ops_per_second"], 1),
            "worker_exit_codes": outcome["codes"],
        }
    return figures


if __name__ == "__main__":
    import json

    args = sys.argv[1:]
    print(json.dumps(run(int(args[0]) if args else 1000, args[1] if len(args) > 1 else "folder"), indent=2))

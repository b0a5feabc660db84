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


def run(trials: int = 1000) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.fixtures.registry_torture import concurrent_run, invariants, kill_trials, seed_registry

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        seed_registry(Path(tmp))
        outcome = kill_trials(Path(tmp), trials=trials, max_delay_s=0.08, seed=42)
        figures["kill_trials"] = {**outcome, "failures": len(outcome["failures"]), "examples": outcome["failures"][:5]}
    with tempfile.TemporaryDirectory() as tmp:
        seed_registry(Path(tmp))
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

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=2))

"""Run every benchmark and print (and save) its figures. Speed and memory live here, never in tests.

Usage: python benchmarks/run.py [--slow] [name ...]   (names: augment, drift, drift_power, export, flow, prepare,
prompting, registry, serving (after `make run`: it loads the exported bundle), train; slow ones, run only when
named or with --slow / EMOSAFE_BENCH_SLOW=1: export_1b, flow_real, long_messages)
Results go to benchmarks/results/<name>.json (git-ignored) and stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_augment
import bench_drift
import bench_drift_power
import bench_export
import bench_export_1b
import bench_flow
import bench_long_messages
import bench_prepare
import bench_prompting
import bench_registry
import bench_serving
import bench_train

BENCHMARKS = {
    "augment": bench_augment.run,
    "drift": bench_drift.run,
    "drift_power": bench_drift_power.run,
    "export": bench_export.run,
    "flow": bench_flow.run,
    "prepare": bench_prepare.run,
    "prompting": bench_prompting.run,
    "registry": bench_registry.run,
    "serving": bench_serving.run,
    "train": bench_train.run,
}
#: Minutes and ~15 GB of RAM (the Llama-3.2-1B-shaped export and quantization), the 15-minute long-message
#: comparison on the real corpora, and the 40-minute real-input
#: flow overhead (direct vs flow on the embedded default): only when asked for.
SLOW = {"export_1b": bench_export_1b.run, "flow_real": bench_flow.run_real, "long_messages": bench_long_messages.run}


def main(args: list[str]) -> None:
    slow = "--slow" in args or os.environ.get("EMOSAFE_BENCH_SLOW") == "1"
    names = [a for a in args if a != "--slow"] or [*BENCHMARKS, *(SLOW if slow else ())]
    unknown = sorted(set(names) - set(BENCHMARKS) - set(SLOW))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}, slow: {sorted(SLOW)}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    for name in names:
        figures = (BENCHMARKS | SLOW)[name]()
        (out / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(f"== {name}")
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Run every benchmark and print (and save) its figures. Speed and memory live here, never in tests.

Usage: python benchmarks/run.py [name ...]   (names: augment, drift, export, prepare, prompting, registry, train)
Results go to benchmarks/results/<name>.json (git-ignored) and stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_augment
import bench_drift
import bench_export
import bench_prepare
import bench_prompting
import bench_registry
import bench_train

BENCHMARKS = {
    "augment": bench_augment.run,
    "drift": bench_drift.run,
    "export": bench_export.run,
    "prepare": bench_prepare.run,
    "prompting": bench_prompting.run,
    "registry": bench_registry.run,
    "train": bench_train.run,
}


def main(names: list[str]) -> None:
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    for name in names or list(BENCHMARKS):
        figures = BENCHMARKS[name]()
        (out / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(f"== {name}")
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

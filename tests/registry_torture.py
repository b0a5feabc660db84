"""Crash and concurrency harness for the registry, shared by tests/test_registry_crash.py and the benchmark.

Children are ``os.fork``-ed from an interpreter that has already imported everything, so a trial costs
milliseconds, not an interpreter start; each child opens its own SQLite connection after the fork.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.config.register import GateConfig
from components.errors import AliasConflictError, RegistryError
from registry.core import Registry
from registry.names import ModelRef
from tests.registry_fixtures import make_run, trinary_metrics

NAME = "emosafe-trinary"
GATE = GateConfig(default_f1_floor=0.5, trinary_macro_f1_floor=0.6, unsafe_recall_floor=0.7)


def seed_registry(root: Path, versions: int = 4) -> None:
    """``versions`` registered versions with equal figures (every promotion passes), v1 in production."""
    registry = Registry(root / "store", GATE)
    for i in range(versions):
        registry.register(make_run(root / "runs", f"seed{i}"), trinary_metrics(), project=root)
    registry.promote(ModelRef(NAME, version=1), "production", "seed")


def one_operation(registry: Registry, rng: random.Random, root: Path, tag: str) -> int | None:
    """One random registry operation; returns the history seq it appended (None when it appended nothing)."""
    roll = rng.random()
    if roll < 0.15:
        record, created = registry.register(make_run(root / "runs", tag), trinary_metrics(), project=root)
        if not created:
            return None
        return next(e.seq for e in registry.meta.history(NAME, "candidate") if e.to_version == record.version)
    versions = [r.version for r in registry.meta.list_versions(NAME)]
    alias = "production" if roll < 0.75 else "staging"
    if roll > 0.9:
        return registry.rollback(NAME, "production", why=f"torture {tag}").seq
    current = registry.meta.aliases(NAME).get(alias)
    target = rng.choice([v for v in versions if v != current])
    event, _ = registry.promote(ModelRef(NAME, version=target), alias, f"torture {tag}")
    return None if event is None else event.seq


def _child_loop(root: Path, seed: int, operations: int | None, out: Path | None, ready: int | None = None) -> None:
    """Runs in a forked child: ``operations`` successful moves (or forever), retrying lost compare-and-swaps.
    Writes a byte to the ``ready`` pipe once the registry is open, so the parent's kill lands amid operations."""
    rng, registry, seqs, retries, done = random.Random(seed), Registry(root / "store", GATE), [], 0, 0
    if ready is not None:
        os.write(ready, b"1")
    while operations is None or done < operations:
        try:
            seq = one_operation(registry, rng, root, f"{seed}-{done}-{retries}")
        except AliasConflictError:
            retries += 1
            continue
        except RegistryError as exc:  # e.g. nothing to roll back yet: not a failure of the registry
            if "roll back" not in str(exc):
                raise
            continue
        if seq is not None:
            seqs.append(seq)
            done += 1
    if out is not None:
        out.write_text(json.dumps({"seqs": seqs, "retries": retries}))


def fork(target: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:  # child: never return into the parent's stack (pytest)
        code = 0
        try:
            target()
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def invariants(root: Path) -> list[str]:
    """What must hold after any crash: integrity, aliases on existing verified versions, history agreeing."""
    with sqlite3.connect(root / "store" / "registry.db") as db:
        problems = [f"integrity_check: {row[0]}" for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"]
    registry = Registry(root / "store", GATE)
    problems += registry.verify()
    for alias, version in registry.meta.aliases(NAME).items():
        registry.resolve(ModelRef(NAME, alias=alias))  # raises if the version does not exist
        events = registry.meta.history(NAME, alias)
        chain = [(a.to_version, b.from_version) for a, b in itertools.pairwise(events)]
        problems += [f"{alias}: history chain broken {pair}" for pair in chain if pair[0] != pair[1]]
        if not events or events[-1].to_version != version:
            problems.append(f"{alias}: alias v{version} disagrees with the history")
        for event in events:
            if alias != "candidate" and event.action == "promote":
                report = registry.meta.get_report(event.gate_report_hash or "")
                if report is None or not report["promote"] or report["candidate_version"] != event.to_version:
                    problems.append(f"{alias}: seq {event.seq} moved without a passing gate report")
    return problems


def kill_trials(root: Path, trials: int, max_delay_s: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """SIGKILL a looping child after a random delay, ``trials`` times, checking the invariants after each kill."""
    rng, failures, progressed = random.Random(seed), [], 0
    start = time.perf_counter()
    for trial in range(trials):
        before = len(Registry(root / "store", GATE).meta.history())
        read, write = os.pipe()
        pid = fork(lambda trial=trial, write=write: _child_loop(root, seed * 100_000 + trial, None, None, write))
        os.close(write)
        os.read(read, 1)  # the child has opened the registry and is about to operate
        os.close(read)
        time.sleep(rng.uniform(0.0, max_delay_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        problems = invariants(root)
        failures += [f"trial {trial}: {p}" for p in problems]
        progressed += len(Registry(root / "store", GATE).meta.history()) > before
    return {
        "trials": trials,
        "failures": failures,
        "trials_with_progress": progressed,
        "seconds": round(time.perf_counter() - start, 2),
    }


def concurrent_run(root: Path, processes: int = 8, operations: int = 50) -> dict[str, Any]:
    """``processes`` forked workers x ``operations`` successful moves each; returns what they did and the timing."""
    outs = [root / f"worker{i}.json" for i in range(processes)]
    start = time.perf_counter()
    pids = [fork(lambda i=i: _child_loop(root, 7_000 + i, operations, outs[i])) for i in range(processes)]
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    seconds = time.perf_counter() - start
    results = [json.loads(out.read_text()) if out.is_file() else {"seqs": [], "retries": 0} for out in outs]
    return {"codes": codes, "results": results, "seconds": seconds, "ops_per_second": processes * operations / seconds}

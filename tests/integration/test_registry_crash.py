"""Crash safety and concurrency of the registry: SIGKILL at random points, and 8 racing processes.

Fast by design: children are forked from this (already warm) interpreter, see tests/fixtures/registry_torture.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.registry_torture import (
    NAME,
    concurrent_run,
    invariants,
    kill_trials,
    open_at,
    seed_registry,
    use_servers,
)
from tests.fixtures.team_servers import S3, Postgres


def test_sigkill_at_random_points_never_tears_the_registry(tmp_path: Path) -> None:
    seed_registry(tmp_path)
    outcome = kill_trials(tmp_path, trials=60, max_delay_s=0.06, seed=1)
    assert outcome["failures"] == []
    # kills land both before and after the child's first committed move (the rest die mid-operation)
    assert 10 <= outcome["trials_with_progress"] < 60, outcome


def test_sigkill_never_tears_the_shared_registry(postgres_server: Postgres, s3_server: S3, tmp_path: Path) -> None:
    """The same kills against PostgreSQL + the object store: a killed writer's transaction is rolled back."""
    use_servers(tmp_path, postgres_server.new_database(), s3_server.new_prefix())
    seed_registry(tmp_path)
    outcome = kill_trials(tmp_path, trials=30, max_delay_s=0.15, seed=2)
    assert outcome["failures"] == []
    assert 3 <= outcome["trials_with_progress"] < 30, outcome


@pytest.mark.slow
def test_eight_machines_a_hundred_moves_each_on_the_shared_registry(
    postgres_server: Postgres, s3_server: S3, tmp_path: Path
) -> None:
    """#21 acceptance: 8 processes with their own working folders x 100 moves and loads against one PostgreSQL
    and one object store."""
    use_servers(tmp_path, postgres_server.new_database(), s3_server.new_prefix())
    _racing(tmp_path, 100)


def _racing(tmp_path: Path, operations: int) -> None:
    """8 processes x ``operations`` alias moves (registrations, promotions, rollbacks), each followed by a model
    load (half of them of the newest version, so first loads race): every acknowledged move has its own history
    row, no row exists that nobody acknowledged, no worker crashed, and verify is clean."""
    seed_registry(tmp_path)
    before = {e.seq for e in open_at(tmp_path).meta.history()}
    outcome = concurrent_run(tmp_path, processes=8, operations=operations, loads=True)
    assert outcome["codes"] == [0] * 8
    claimed = [seq for result in outcome["results"] for seq in result["seqs"]]
    assert len(claimed) == 8 * operations and len(set(claimed)) == 8 * operations
    history = open_at(tmp_path).meta.history(NAME)
    assert {e.seq for e in history} - before == set(claimed)
    assert invariants(tmp_path) == []  # each alias's history is one chain ending at the alias; verify() is clean
    loads = sum(r["loads"] for r in outcome["results"])
    first = sum(r["first_loads"] for r in outcome["results"])
    assert loads >= 8 * operations and first > 0  # one load per attempt, retries included
    print(
        f"\n8x{operations} registry moves + {loads} loads ({first} found no checkout yet): "
        f"{outcome['ops_per_second']:.0f} moves/s, {sum(r['retries'] for r in outcome['results'])} CAS retries, "
        f"{os.cpu_count()} cpus"
    )


def test_eight_processes_fifty_moves_and_loads_each_are_linearizable_and_nothing_is_lost(tmp_path: Path) -> None:
    _racing(tmp_path, 50)


@pytest.mark.slow
def test_eight_processes_a_hundred_moves_and_first_loads_each(tmp_path: Path) -> None:
    """#20 acceptance: 8 processes x 100 concurrent alias moves and first-loads of the same version."""
    _racing(tmp_path, 100)


def test_the_invariant_checker_catches_a_torn_registry(tmp_path: Path) -> None:
    """The crash test is only as good as its checker: an alias moved without a history row must be reported."""
    import sqlite3

    seed_registry(tmp_path)
    assert invariants(tmp_path) == []
    with sqlite3.connect(tmp_path / "store" / "registry.db") as db:
        db.execute("UPDATE aliases SET version = 3 WHERE name = ? AND alias = 'production'", (NAME,))
    assert any("disagrees with the history" in p for p in invariants(tmp_path))
    with sqlite3.connect(tmp_path / "store" / "registry.db") as db:
        db.execute("UPDATE history SET gate_report_hash = NULL WHERE alias = 'production'")
        db.execute("UPDATE aliases SET version = 1 WHERE name = ? AND alias = 'production'", (NAME,))
    assert any("without a passing gate report" in p for p in invariants(tmp_path))

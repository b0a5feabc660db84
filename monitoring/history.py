"""The monitoring history: one SQLite row per assessed window, beside the registry store (.emosafe/).

A window is keyed by model, version, windowing rule and bounds, so re-running `emosafe monitor` over a growing log
updates the windows it has seen (the last, partial one grows) instead of duplicating them. WAL and a busy timeout
let a cron job and a person read and write it at the same time. Rows hold verdicts, statistics and proportions;
never text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    task TEXT NOT NULL,
    window_rule TEXT NOT NULL,
    start TEXT NOT NULL,
    end TEXT NOT NULL,
    n INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    assessment TEXT NOT NULL,
    log_sha256 TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (model, version, window_rule, start)
)
"""


@dataclass(frozen=True)
class HistoryRow:
    model: str
    version: str
    task: str
    window_rule: str
    start: str
    end: str
    n: int
    verdict: str
    assessment: dict[str, Any]
    log_sha256: str
    recorded_at: str


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA busy_timeout=30000")
        connection.execute(_SCHEMA)
        yield connection


def record_windows(path: Path, rows: Sequence[HistoryRow]) -> None:
    """Insert or update ``rows`` in one transaction (all or nothing)."""
    with _connect(path) as connection, connection:
        connection.executemany(
            "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.model,
                    r.version,
                    r.task,
                    r.window_rule,
                    r.start,
                    r.end,
                    r.n,
                    r.verdict,
                    json.dumps(r.assessment, sort_keys=True),
                    r.log_sha256,
                    r.recorded_at,
                )
                for r in rows
            ],
        )


def load_history(path: Path, model: str, version: str | None = None) -> list[HistoryRow]:
    """Every recorded window of ``model`` (optionally one version), oldest first."""
    if not path.is_file():
        return []
    query = "SELECT * FROM windows WHERE model = ?" + (" AND version = ?" if version is not None else "")
    arguments = (model,) if version is None else (model, version)
    with _connect(path) as connection:
        rows = connection.execute(query + " ORDER BY start, end", arguments).fetchall()
    return [
        HistoryRow(
            model=r[0],
            version=r[1],
            task=r[2],
            window_rule=r[3],
            start=r[4],
            end=r[5],
            n=r[6],
            verdict=r[7],
            assessment=json.loads(r[8]),
            log_sha256=r[9],
            recorded_at=r[10],
        )
        for r in rows
    ]


def resume_point(path: Path, model: str, version: str, rule: str, complete_n: int | None) -> tuple[str, bool] | None:
    """Where an incremental run (``--since last``) starts, from the latest recorded window of this model version
    and windowing rule: ``(its start, True)`` (inclusive) when it may still grow (a count window short of
    ``complete_n``, or any time window: its period may not be over), else ``(its end, False)`` (strictly after).
    None when nothing was recorded yet (the run reads the whole log)."""
    rows = [row for row in load_history(path, model, version) if row.window_rule == rule]
    if not rows:
        return None
    last = max(rows, key=lambda row: (row.start, row.end))
    if complete_n is not None and last.n >= complete_n:
        return last.end, False
    return last.start, True

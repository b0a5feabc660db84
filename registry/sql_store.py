"""The registry's metadata over SQL, written once for both backends (``sqlite_store``, ``postgres_store``).

Every statement is portable SQL with ``?`` placeholders (SQLite >= 3.35 and PostgreSQL both take ``RETURNING`` and
``ON CONFLICT``); a backend supplies the connection (``_db``: ``execute``/``executemany`` returning a cursor) and
``_write``, a transaction that first takes the registry's write lock, so every check-then-write (compare-and-swap
alias moves, version numbering) is serialized across processes and machines, and a crash leaves the whole
transaction or none of it.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from components.errors import AliasConflictError, RegistryError
from registry.store import AliasEvent, ArtifactRecord, EvaluationRecord, MoveRequest, VersionRecord


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SqlMetadataStore:
    """``MetadataStore`` over a SQL connection; subclasses open it and define the write transaction."""

    _db: Any

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def close(self) -> None:
        self._db.close()

    # versions -------------------------------------------------------------------------------------------------
    def add_version(self, draft: VersionRecord, move: MoveRequest | None) -> tuple[VersionRecord, bool]:
        """Insert ``draft`` (its version number is assigned here) or return the version already holding the same
        artifacts (``created`` False). ``move`` (e.g. to ``candidate``) is applied in the same transaction."""
        with self._write() as db:
            row = db.execute(
                "SELECT version FROM versions WHERE name = ? AND manifest_sha256 = ?",
                (draft.name, draft.manifest_sha256),
            ).fetchone()
            if row:
                existing = self.get_version(draft.name, int(row[0]))
                assert existing is not None
                return existing, False
            task = db.execute("SELECT task FROM versions WHERE name = ? LIMIT 1", (draft.name,)).fetchone()
            if task and task[0] != draft.task:
                raise RegistryError(f"model {draft.name} holds {task[0]} models; cannot register a {draft.task} one")
            number = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?", (draft.name,))
            version = int(number.fetchone()[0])
            db.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    draft.name,
                    version,
                    draft.task,
                    draft.created_at,
                    draft.manifest_sha256,
                    json.dumps(draft.lineage, sort_keys=True),
                    json.dumps(draft.metrics, sort_keys=True),
                    draft.wandb_link,
                ),
            )
            db.executemany(
                "INSERT INTO artifacts VALUES (?, ?, ?, ?, ?)",
                [(draft.name, version, a.path, a.sha256, a.size) for a in draft.artifacts],
            )
            if move is not None:
                current = self._alias(draft.name, move.alias)
                self._apply_move(MoveRequest(**{**move.__dict__, "to_version": version, "expected": current}))
        record = self.get_version(draft.name, version)
        assert record is not None
        return record, True

    def get_version(self, name: str, version: int) -> VersionRecord | None:
        row = self._db.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        return None if row is None else self._record(row)

    def list_versions(self, name: str | None = None) -> list[VersionRecord]:
        query = "SELECT * FROM versions" + (" WHERE name = ?" if name else "") + " ORDER BY name, version"
        return [self._record(row) for row in self._db.execute(query, (name,) if name else ())]

    def _record(self, row: tuple[Any, ...]) -> VersionRecord:
        name, version = row[0], row[1]
        artifacts = tuple(
            ArtifactRecord(path, sha, size)
            for path, sha, size in self._db.execute(
                "SELECT path, sha256, size FROM artifacts WHERE name = ? AND version = ? ORDER BY path",
                (name, version),
            )
        )
        return VersionRecord(
            name=name,
            version=version,
            task=row[2],
            created_at=row[3],
            manifest_sha256=row[4],
            artifacts=artifacts,
            lineage=json.loads(row[5]),
            metrics=json.loads(row[6]),
            wandb_link=row[7],
        )

    # aliases and history --------------------------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int]:
        rows = self._db.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))
        return {alias: int(version) for alias, version in rows}

    def _alias(self, name: str, alias: str) -> int | None:
        row = self._db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        return None if row is None else int(row[0])

    def move_alias(self, move: MoveRequest) -> AliasEvent:
        """Compare-and-swap ``move.alias`` from ``move.expected`` to ``move.to_version`` and append the history row,
        in one transaction. Raises AliasConflictError when the alias (or the champion alias) moved meanwhile."""
        with self._write():
            return self._apply_move(move)

    def _apply_move(self, move: MoveRequest) -> AliasEvent:
        if self.get_version(move.name, move.to_version) is None:
            raise RegistryError(f"{move.name}: version {move.to_version} does not exist")
        current = self._alias(move.name, move.alias)
        if current != move.expected:
            raise AliasConflictError(
                f"{move.name}@{move.alias} holds {_v(current)}, expected {_v(move.expected)}: someone moved it; retry"
            )
        if move.champion_alias is not None:
            champion = self._alias(move.name, move.champion_alias)
            if champion != move.champion:
                raise AliasConflictError(
                    f"{move.name}@{move.champion_alias} moved to {_v(champion)} after the gate compared against "
                    f"{_v(move.champion)}; re-run the gate"
                )
        event = AliasEvent(
            0,
            move.name,
            move.alias,
            now(),
            current,
            move.to_version,
            move.who,
            move.why,
            move.action,
            move.gate_report_hash,
        )
        cursor = self._db.execute(
            "INSERT INTO history (name, alias, at, from_version, to_version, who, why, action, gate_report_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            dataclasses.astuple(event)[1:],  # every field but seq, which the database assigns
        )
        seq = int(cursor.fetchone()[0])
        self._db.execute(
            "INSERT INTO aliases VALUES (?, ?, ?, ?) ON CONFLICT (name, alias) DO UPDATE SET version = ?, seq = ?",
            (move.name, move.alias, move.to_version, seq, move.to_version, seq),
        )
        return dataclasses.replace(event, seq=seq)

    def history(self, name: str | None = None, alias: str | None = None) -> list[AliasEvent]:
        clauses = [c for c, v in (("name = ?", name), ("alias = ?", alias)) if v is not None]
        query = "SELECT * FROM history" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY seq"
        args = tuple(v for v in (name, alias) if v is not None)
        return [AliasEvent(*row) for row in self._db.execute(query, args)]

    # gate reports ---------------------------------------------------------------------------------------------
    def save_report(self, report_hash: str, name: str, version: int, promote: bool, report: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (report_hash, name, version, int(promote), now(), json.dumps(report, sort_keys=True)),
            )

    def get_report(self, report_hash: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT report FROM reports WHERE report_hash = ?", (report_hash,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def latest_report(self, name: str, version: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT report FROM reports WHERE name = ? AND version = ? ORDER BY at DESC LIMIT 1", (name, version)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # evaluations (continuous re-evaluation) -------------------------------------------------------------------
    def add_evaluation(self, draft: EvaluationRecord) -> EvaluationRecord:
        """Append one evaluation of an existing version (its ``seq`` is assigned here), in one transaction.

        Raises RegistryError when the version does not exist. Past rows are never changed (triggers refuse).
        """
        with self._write() as db:
            if self.get_version(draft.name, draft.version) is None:
                raise RegistryError(f"{draft.name}: version {draft.version} does not exist")
            cursor = db.execute(
                "INSERT INTO evaluations (name, version, evaluated_at, who, feedback_sha256, feedback_rows, flagged, "
                "metrics, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (
                    draft.name,
                    draft.version,
                    draft.evaluated_at,
                    draft.who,
                    draft.feedback_sha256,
                    draft.feedback_rows,
                    json.dumps(list(draft.flagged)),
                    json.dumps(draft.metrics, sort_keys=True),
                    json.dumps(draft.details, sort_keys=True),
                ),
            )
            seq = int(cursor.fetchone()[0])
        return EvaluationRecord(**{**draft.__dict__, "seq": seq})

    def evaluations(self, name: str | None = None, version: int | None = None) -> list[EvaluationRecord]:
        """Evaluations in the order they were appended, optionally of one model / one version."""
        clauses = [c for c, v in (("name = ?", name), ("version = ?", version)) if v is not None]
        query = "SELECT * FROM evaluations" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY seq"
        rows = self._db.execute(query, tuple(v for v in (name, version) if v is not None))
        return [
            EvaluationRecord(
                seq,
                model,
                int(number),
                at,
                who,
                sha,
                int(n),
                tuple(json.loads(flagged)),
                json.loads(metrics),
                json.loads(details),
            )
            for seq, model, number, at, who, sha, n, flagged, metrics, details in rows
        ]

    # withdrawals (flow rollback) ----------------------------------------------------------------------------------
    def withdraw(self, name: str, versions: list[int], who: str, why: str) -> list[str]:
        """Mark ``versions`` withdrawn and unset every alias still holding one of them, in one transaction.

        Returns the aliases unset. Versions already withdrawn are left as they were.
        """
        with self._write() as db:
            marks = ",".join("?" * len(versions))
            rows = db.execute(
                f"SELECT alias FROM aliases WHERE name = ? AND version IN ({marks}) ORDER BY alias", (name, *versions)
            ).fetchall()
            cleared = [str(row[0]) for row in rows]
            db.execute(f"DELETE FROM aliases WHERE name = ? AND version IN ({marks})", (name, *versions))
            db.executemany(
                "INSERT INTO withdrawn VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(name, v, now(), who, why, json.dumps(cleared)) for v in versions],
            )
        return cleared

    def withdrawn(self, name: str) -> dict[int, list[str]]:
        """``{version: aliases its withdrawal unset}`` for the withdrawn versions of ``name``."""
        rows = self._db.execute("SELECT version, cleared FROM withdrawn WHERE name = ?", (name,))
        return {int(version): list(json.loads(cleared)) for version, cleared in rows}

    def reinstate(self, name: str, version: int, move: MoveRequest) -> None:
        """Undo a withdrawal (the same files were registered again) and apply ``move`` (to ``candidate``) with it."""
        with self._write() as db:
            db.execute("DELETE FROM withdrawn WHERE name = ? AND version = ?", (name, version))
            current = self._alias(name, move.alias)
            self._apply_move(MoveRequest(**{**move.__dict__, "to_version": version, "expected": current}))


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"

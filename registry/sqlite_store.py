"""SQLite implementation of ``MetadataStore``: WAL journal, busy timeout, one ``BEGIN IMMEDIATE`` per write.

Each write takes the database's write lock before reading what it checks (compare-and-swap), so two processes
cannot both move an alias from the same holder; a SIGKILL at any instant leaves either the whole transaction or
none of it (SQLite's journal), never an alias without its history row.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.errors import RegistryError
from registry.sql_store import SqlMetadataStore, now
from registry.sqlite_schema import EVALUATIONS_SCHEMA, SCHEMA, WITHDRAWN_SCHEMA

__all__ = ["SqliteMetadataStore", "now"]


def _read_only_migration(db: sqlite3.Connection, path: Path) -> None:
    """A registry made by older code lacks the later tables; read-only, they cannot be added to the file, so empty
    TEMP tables of the same shape stand in (what a write open would have created)."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "versions" not in tables:
        raise RegistryError(f"{path}: an SQLite file, but not a registry (no versions table)")
    for name, script in (("evaluations", EVALUATIONS_SCHEMA), ("withdrawn", WITHDRAWN_SCHEMA)):
        if name not in tables:
            create = script.split(";")[0].replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE")
            db.execute(re.sub(r",\s*FOREIGN KEY \([^)]*\) REFERENCES \w+ \([^)]*\)", "", create))


class SqliteMetadataStore(SqlMetadataStore):
    """Metadata in ``<root>/registry.db``. Safe for many processes on one machine (not over NFS)."""

    def __init__(self, path: Path, busy_timeout_ms: int = 60_000, read_only: bool = False) -> None:
        """Open (``read_only``: never create, never write; a read-only mount or another user's registry can still
        be listed and verified) or open-or-create. A damaged file is a RegistryError naming it, never a traceback."""
        self.path = path
        try:
            self._db = self._open(path, busy_timeout_ms, read_only)
            self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header: a damaged file fails
        except sqlite3.DatabaseError as exc:
            raise RegistryError(
                f"{path}: not a readable registry database ({exc}); restore it from a backup, or point "
                "EMOSAFE_REGISTRY / register.store at the right folder"
            ) from None

    @staticmethod
    def _open(path: Path, busy_timeout_ms: int, read_only: bool) -> sqlite3.Connection:
        if read_only:
            if not path.is_file():
                raise RegistryError(
                    f"{path}: no registry here (nothing registered yet, or EMOSAFE_REGISTRY / register.store points "
                    "at the wrong folder); a read command never creates one"
                )
            uri = f"{path.resolve().as_uri()}?mode=ro"
            if not os.access(path.parent, os.W_OK):  # WAL readers need to write -shm; a read-only folder cannot
                uri += "&immutable=1"
            db = sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _read_only_migration(db, path)
            return db
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        db.executescript(SCHEMA)  # executescript commits first, so it runs outside _write()
        db.executescript(EVALUATIONS_SCHEMA)
        db.executescript(WITHDRAWN_SCHEMA)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

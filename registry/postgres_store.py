"""PostgreSQL implementation of ``MetadataStore``: one registry shared by every machine of a team.

The statements are the SQLite store's (``sql_store``); this module opens the connection and defines the write
transaction: ``BEGIN`` plus a transaction-scoped advisory lock (``pg_advisory_xact_lock``), taken before anything
is read, so two writers anywhere serialize exactly as SQLite's ``BEGIN IMMEDIATE`` does on one machine, and a crash
(a killed process, a dropped connection) rolls the transaction back. The schema is versioned
(``postgres_schema.MIGRATIONS``): opening for writing applies what is missing; opening read-only never creates or
migrates anything. The URL comes from ``register.store`` (``postgresql://host:port/db``); the password from the
environment as libpq reads it (``PGPASSWORD``, ``~/.pgpass``), never from params. psycopg is imported here only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from components.errors import RegistryError
from registry.postgres_schema import LATEST, MIGRATIONS
from registry.sql_store import SqlMetadataStore, now

#: The advisory lock key every registry writer takes (any fixed 64-bit number; "emosafe" in ASCII).
WRITE_LOCK = 0x656D6F73616665

_PLACEHOLDER = re.compile(r"\?")


def is_postgres_url(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


class _Connection:
    """The few DB-API calls the shared statements make, with ``?`` placeholders turned into psycopg's ``%s``."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.connection.execute(_PLACEHOLDER.sub("%s", sql), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(_PLACEHOLDER.sub("%s", sql), [tuple(r) for r in rows])

    def close(self) -> None:
        self.connection.close()


class PostgresMetadataStore(SqlMetadataStore):
    """Metadata in a PostgreSQL database (the tables of ``postgres_schema``)."""

    def __init__(self, url: str, read_only: bool = False, migrations: Sequence[tuple[int, str]] = MIGRATIONS) -> None:
        """Connect; migrate to ``migrations`` (all of them unless a test asks for an older schema) when writable."""
        import psycopg

        self.url = url
        try:
            connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise RegistryError(f"registry store {_safe(url)}: cannot connect ({exc})") from None
        self._db = _Connection(connection)
        applied = self._applied()
        if read_only:
            if not applied:
                raise RegistryError(
                    f"{_safe(url)}: no registry here (nothing registered yet); a read command never creates one"
                )
            self._db.execute("SET default_transaction_read_only = on")
            return
        self._migrate(applied, migrations)

    def _applied(self) -> set[int]:
        exists = self._db.execute("SELECT to_regclass('emosafe_schema') IS NOT NULL").fetchone()[0]
        if not exists:
            return set()
        return {int(row[0]) for row in self._db.execute("SELECT version FROM emosafe_schema")}

    def _migrate(self, applied: set[int], migrations: Sequence[tuple[int, str]]) -> None:
        if applied and max(applied) > LATEST:
            raise RegistryError(
                f"{_safe(self.url)}: schema version {max(applied)} is newer than this emosafe knows ({LATEST}); "
                "upgrade emosafe"
            )
        if all(number in applied for number, _ in migrations):
            return
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS emosafe_schema (version INTEGER PRIMARY KEY, applied_at TEXT)")
            done = {int(row[0]) for row in db.execute("SELECT version FROM emosafe_schema")}  # under the lock
            for number, script in migrations:
                if number not in done:
                    db.connection.execute(script)
                    db.execute("INSERT INTO emosafe_schema VALUES (?, ?)", (number, now()))

    def schema_version(self) -> int:
        return max(self._applied(), default=0)

    @contextmanager
    def _write(self) -> Iterator[_Connection]:
        with self._db.connection.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            yield self._db


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", url)

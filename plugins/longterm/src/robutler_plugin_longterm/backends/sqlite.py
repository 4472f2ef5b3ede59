"""The embedded default: one SQLite file, FTS5 for search, stdlib ``sqlite3`` off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..facts import Fact
from ..scope import Scope
from . import Backend, Listing, PutOutcome

T = TypeVar("T")


def _schema(table: str) -> str:
    # An external-content FTS5 table kept in sync by triggers: the triggers run inside the
    # statement that changes the row, so the index can never disagree with the table.
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (namespace, user_id, key)
);
CREATE INDEX IF NOT EXISTS {table}_recent ON {table} (namespace, user_id, updated_at);
CREATE VIRTUAL TABLE IF NOT EXISTS {table}_fts USING fts5(
    key, value, content='{table}', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON {table} BEGIN
    INSERT INTO {table}_fts (rowid, key, value) VALUES (new.id, new.key, new.value);
END;
CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON {table} BEGIN
    INSERT INTO {table}_fts ({table}_fts, rowid, key, value) VALUES ('delete', old.id, old.key, old.value);
END;
CREATE TRIGGER IF NOT EXISTS {table}_au AFTER UPDATE ON {table} BEGIN
    INSERT INTO {table}_fts ({table}_fts, rowid, key, value) VALUES ('delete', old.id, old.key, old.value);
    INSERT INTO {table}_fts (rowid, key, value) VALUES (new.id, new.key, new.value);
END;
"""


class SQLiteBackend(Backend):
    """Facts in a SQLite file (WAL mode).

    All access goes through one connection owned by one worker thread, so the
    connection is never shared between threads and writes are naturally serialized;
    other processes (or other tables) on the same file are handled by SQLite's locking
    and ``busy_timeout``.

    :param path: the database file (its directory is created); ``:memory:`` works too.
    :param table: the table name (validated by the config: a plain identifier).
    :param timeout: seconds to wait for another writer's lock.
    """

    kind = "sqlite"

    def __init__(self, path: str, table: str, *, timeout: float = 5.0) -> None:
        self.path = path
        self.table = table
        self.timeout = timeout
        self.label = f"{path} table {table}"
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="longterm-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating its directory), switch to WAL, create the schema."""
        await self._run(self._open)

    def _open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            Path(self.path).expanduser() if self.path != ":memory:" else self.path,
            timeout=self.timeout, isolation_level=None, check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(_schema(self.table)):
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        if self._executor is None:
            return
        await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("the database is not open")
        return self._conn

    def is_backend_error(self, exc: BaseException) -> bool:
        """SQLite errors and file-system errors."""
        return isinstance(exc, sqlite3.Error | OSError)

    # -- operations --------------------------------------------------------------------------

    async def ping(self) -> None:
        """``SELECT 1`` on the connection."""
        await self._run(lambda: self._db().execute("SELECT 1").fetchone())

    async def put(self, scope: Scope, key: str, value: str, max_memories: int) -> PutOutcome:
        """Upsert in one ``BEGIN IMMEDIATE`` transaction (the count and the write agree)."""
        return await self._run(self._put, scope, key, value, max_memories)

    def _put(self, scope: Scope, key: str, value: str, max_memories: int) -> PutOutcome:
        db, t = self._db(), self.table
        db.execute("BEGIN IMMEDIATE")
        try:
            count, exists = db.execute(
                f"SELECT count(*), coalesce(max(key = ?), 0) FROM {t} WHERE namespace = ? AND user_id = ?",
                (key, scope.namespace, scope.user),
            ).fetchone()
            if not exists and count >= max_memories:
                db.execute("ROLLBACK")
                return "full"
            now = time.time()
            db.execute(
                f"INSERT INTO {t} (namespace, user_id, key, value, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, user_id, key) "
                "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (scope.namespace, scope.user, key, value, now, now),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return "updated" if exists else "created"

    async def delete(self, scope: Scope, key: str) -> bool:
        """One ``DELETE`` (its trigger updates the index in the same statement)."""

        def run() -> bool:
            cur = self._db().execute(
                f"DELETE FROM {self.table} WHERE namespace = ? AND user_id = ? AND key = ?",
                (scope.namespace, scope.user, key),
            )
            return cur.rowcount > 0

        return await self._run(run)

    async def listing(self, scope: Scope, limit: int) -> Listing:
        """Facts by key, and the total, read in one transaction."""

        def run() -> Listing:
            db = self._db()
            db.execute("BEGIN")
            try:
                rows = db.execute(
                    f"SELECT key, value, updated_at FROM {self.table} "
                    "WHERE namespace = ? AND user_id = ? ORDER BY key LIMIT ?",
                    (scope.namespace, scope.user, limit),
                ).fetchall()
                (total,) = db.execute(
                    f"SELECT count(*) FROM {self.table} WHERE namespace = ? AND user_id = ?",
                    (scope.namespace, scope.user),
                ).fetchone()
            finally:
                db.execute("COMMIT")
            return Listing([Fact(*row) for row in rows], total)

        return await self._run(run)

    async def search(self, scope: Scope, terms: list[str], limit: int) -> list[Fact]:
        """FTS5 ``MATCH`` of any term (each quoted, so it is a plain word), ranked by bm25."""
        if not terms:
            return []
        match = " OR ".join(f'"{term}"' for term in terms)
        t = self.table

        def run() -> list[Fact]:
            rows = self._db().execute(
                f"SELECT m.key, m.value, m.updated_at FROM {t}_fts f JOIN {t} m ON m.id = f.rowid "
                f"WHERE {t}_fts MATCH ? AND m.namespace = ? AND m.user_id = ? "
                f"ORDER BY bm25({t}_fts), m.updated_at DESC, m.id DESC LIMIT ?",
                (match, scope.namespace, scope.user, limit),
            ).fetchall()
            return [Fact(*row) for row in rows]

        return await self._run(run)

    async def recent(self, scope: Scope, limit: int) -> list[Fact]:
        """Newest first."""

        def run() -> list[Fact]:
            rows = self._db().execute(
                f"SELECT key, value, updated_at FROM {self.table} WHERE namespace = ? AND user_id = ? "
                "ORDER BY updated_at DESC, id DESC LIMIT ?",
                (scope.namespace, scope.user, limit),
            ).fetchall()
            return [Fact(*row) for row in rows]

        return await self._run(run)

    async def relevant(self, scope: Scope, terms: list[str], limit: int) -> list[Fact]:
        """Matches by bm25, then the rest newest first (a left join on the FTS matches)."""
        if not terms:
            return await self.recent(scope, limit)
        match = " OR ".join(f'"{term}"' for term in terms)
        t = self.table

        def run() -> list[Fact]:
            rows = self._db().execute(
                f"SELECT m.key, m.value, m.updated_at FROM {t} m LEFT JOIN "
                f"(SELECT rowid AS id, bm25({t}_fts) AS rank FROM {t}_fts WHERE {t}_fts MATCH ?) f "
                "ON f.id = m.id WHERE m.namespace = ? AND m.user_id = ? "
                "ORDER BY f.rank IS NULL, f.rank, m.updated_at DESC, m.id DESC LIMIT ?",
                (match, scope.namespace, scope.user, limit),
            ).fetchall()
            return [Fact(*row) for row in rows]

        return await self._run(run)


def _statements(script: str) -> list[str]:
    """Split the schema script into statements (triggers contain ``;`` inside ``BEGIN..END``)."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements

"""The embedded default: one SQLite file, stdlib ``sqlite3`` on one worker thread."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .backend import DeleteOutcome, Registration, UpsertOutcome

T = TypeVar("T")

_COLUMNS = "name, url, description, intents, owner, expires_at"


def _row(row: tuple[Any, ...]) -> Registration:
    name, url, description, intents, owner, expires_at = row
    return Registration(name, url, description, tuple(json.loads(intents)), owner, float(expires_at))


class SQLiteBackend:
    """Registrations in a SQLite file (WAL mode), through one connection owned by one
    worker thread; each write is one ``BEGIN IMMEDIATE`` transaction, so the ownership
    check and the write agree even with several processes on the file.

    :param path: the database file (its directory is created); ``:memory:`` works too.
    :param table: the table name (validated by the config).
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
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="discovery-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("the registry database is not open")
        return self._conn

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def open(self) -> None:
        """Open the file (creating its directory), switch to WAL, create the table."""
        await self._run(self._open)

    def _open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        target = str(Path(self.path).expanduser()) if self.path != ":memory:" else self.path
        conn = sqlite3.connect(target, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (name TEXT PRIMARY KEY, url TEXT NOT NULL, "
                "description TEXT NOT NULL, intents TEXT NOT NULL, owner TEXT NOT NULL, "
                "expires_at REAL NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_owner ON {self.table} (owner, expires_at)")
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

    def is_backend_error(self, exc: BaseException) -> bool:
        """SQLite errors and file-system errors."""
        return isinstance(exc, sqlite3.Error | OSError)

    async def ping(self) -> None:
        """``SELECT 1``."""
        await self._run(lambda: self._db().execute("SELECT 1").fetchone())

    async def upsert(self, reg: Registration, *, now: float, admin: bool, max_per_owner: int) -> UpsertOutcome:
        """Insert or renew in one transaction (see :class:`~.backend.Backend`)."""
        t = self.table

        def run(db: sqlite3.Connection) -> UpsertOutcome:
            held = db.execute(f"SELECT owner FROM {t} WHERE name = ? AND expires_at > ?", (reg.name, now)).fetchone()
            if held is not None and held[0] != reg.owner and not admin:
                return "taken"
            if held is None:
                (count,) = db.execute(
                    f"SELECT count(*) FROM {t} WHERE owner = ? AND expires_at > ?", (reg.owner, now)
                ).fetchone()
                if count >= max_per_owner:
                    return "full"
            owner = held[0] if held is not None else reg.owner
            db.execute(
                f"INSERT INTO {t} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "url = excluded.url, description = excluded.description, intents = excluded.intents, "
                "owner = excluded.owner, expires_at = excluded.expires_at",
                (reg.name, reg.url, reg.description, json.dumps(list(reg.intents)), owner, reg.expires_at),
            )
            return "stored"

        return await self._run(self._write, run)

    async def delete(self, name: str, *, owner: str, admin: bool, now: float) -> DeleteOutcome:
        """Delete in one transaction (see :class:`~.backend.Backend`)."""
        t = self.table

        def run(db: sqlite3.Connection) -> DeleteOutcome:
            held = db.execute(f"SELECT owner FROM {t} WHERE name = ? AND expires_at > ?", (name, now)).fetchone()
            if held is None:
                return "missing"
            if held[0] != owner and not admin:
                return "forbidden"
            db.execute(f"DELETE FROM {t} WHERE name = ?", (name,))
            return "deleted"

        return await self._run(self._write, run)

    async def get(self, name: str, *, now: float) -> Registration | None:
        """The live registration ``name``."""
        sql = f"SELECT {_COLUMNS} FROM {self.table} WHERE name = ? AND expires_at > ?"
        row = await self._run(lambda: self._db().execute(sql, (name, now)).fetchone())
        return None if row is None else _row(row)

    async def live(self, *, now: float, limit: int) -> list[Registration]:
        """Live registrations by name."""
        sql = f"SELECT {_COLUMNS} FROM {self.table} WHERE expires_at > ? ORDER BY name LIMIT ?"
        rows = await self._run(lambda: self._db().execute(sql, (now, limit)).fetchall())
        return [_row(r) for r in rows]

    async def purge(self, *, now: float) -> int:
        """Delete lapsed rows."""
        sql = f"DELETE FROM {self.table} WHERE expires_at <= ?"
        return await self._run(self._write, lambda db: db.execute(sql, (now,)).rowcount)

"""Registrations in PostgreSQL through an asyncpg pool, shared by every replica."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from .backend import DeleteOutcome, Registration, UpsertOutcome

#: Errors that mean the database (or the way to it) failed, not our SQL.
_BACKEND_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

_COLUMNS = "name, url, description, intents, owner, expires_at"


def describe_dsn(dsn: str) -> str:
    """``host:port/database`` of a DSN, without user or password (for errors and health)."""
    try:
        parts = urlsplit(dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "(unparsable dsn)"


def _lock_id(key: str) -> int:
    """A stable signed 64-bit advisory lock id."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def _row(row: Any) -> Registration:
    return Registration(row["name"], row["url"], row["description"], tuple(row["intents"]), row["owner"],
                        float(row["expires_at"]))


class PostgresBackend:
    """Registrations in a PostgreSQL table.

    The table (and the schema of ``schema.table``) is created on open under an advisory
    lock, so replicas starting together do not race. Each write is one transaction that
    locks the name first (an advisory transaction lock), so the ownership check, the
    per-owner count and the write agree across replicas. Only the validated table name is
    interpolated; every value is a parameter.

    :param dsn: ``postgresql://user:pass@host:port/db``.
    :param table: ``name`` or ``schema.name``.
    :param timeout: seconds to connect, and for each statement.
    """

    kind = "postgres"

    def __init__(self, dsn: str, table: str, *, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.table = table
        self.schema = table.rpartition(".")[0]
        self.timeout = timeout
        self.label = f"{describe_dsn(dsn)} table {table}"
        self._pool: asyncpg.Pool | None = None

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise asyncpg.InterfaceError("the registry database is not open")
        return self._pool

    async def open(self) -> None:
        """Create the pool and the table."""
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=5, timeout=self.timeout,
                                         command_timeout=self.timeout)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(f"schema:{self.table}"))
                if self.schema:
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table} (name TEXT PRIMARY KEY, url TEXT NOT NULL, "
                    "description TEXT NOT NULL, intents TEXT[] NOT NULL, owner TEXT NOT NULL, "
                    "expires_at DOUBLE PRECISION NOT NULL)"
                )
                index = self.table.rpartition(".")[2] + "_owner"
                await conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {self.table} (owner, expires_at)")
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def is_backend_error(self, exc: BaseException) -> bool:
        """asyncpg's errors, connection failures and timeouts."""
        return isinstance(exc, _BACKEND_ERRORS)

    async def ping(self) -> None:
        """``SELECT 1``."""
        await self._db().fetchval("SELECT 1")

    async def upsert(self, reg: Registration, *, now: float, admin: bool, max_per_owner: int) -> UpsertOutcome:
        """Insert or renew in one transaction (see :class:`~.backend.Backend`)."""
        t = self.table
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(f"{t}:{reg.name}"))
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(f"{t}:owner:{reg.owner}"))
            held = await conn.fetchval(f"SELECT owner FROM {t} WHERE name = $1 AND expires_at > $2", reg.name, now)
            if held is not None and held != reg.owner and not admin:
                return "taken"
            if held is None:
                count = await conn.fetchval(
                    f"SELECT count(*) FROM {t} WHERE owner = $1 AND expires_at > $2", reg.owner, now
                )
                if count >= max_per_owner:
                    return "full"
            await conn.execute(
                f"INSERT INTO {t} ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET "
                "url = excluded.url, description = excluded.description, intents = excluded.intents, "
                "owner = excluded.owner, expires_at = excluded.expires_at",
                reg.name, reg.url, reg.description, list(reg.intents), held or reg.owner, reg.expires_at,
            )
            return "stored"

    async def delete(self, name: str, *, owner: str, admin: bool, now: float) -> DeleteOutcome:
        """Delete in one transaction (see :class:`~.backend.Backend`)."""
        t = self.table
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(f"{t}:{name}"))
            held = await conn.fetchval(f"SELECT owner FROM {t} WHERE name = $1 AND expires_at > $2", name, now)
            if held is None:
                return "missing"
            if held != owner and not admin:
                return "forbidden"
            await conn.execute(f"DELETE FROM {t} WHERE name = $1", name)
            return "deleted"

    async def get(self, name: str, *, now: float) -> Registration | None:
        """The live registration ``name``."""
        row = await self._db().fetchrow(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE name = $1 AND expires_at > $2", name, now
        )
        return None if row is None else _row(row)

    async def live(self, *, now: float, limit: int) -> list[Registration]:
        """Live registrations by name."""
        rows = await self._db().fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE expires_at > $1 ORDER BY name LIMIT $2", now, limit
        )
        return [_row(r) for r in rows]

    async def purge(self, *, now: float) -> int:
        """Delete lapsed rows."""
        status = await self._db().execute(f"DELETE FROM {self.table} WHERE expires_at <= $1", now)
        return int(status.split()[-1])

"""PostgreSQL through an asyncpg pool: a ``tsvector`` column for full-text search."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from ..facts import Fact
from ..scope import Scope
from . import Backend, Listing, PutOutcome

#: The text search configuration: English stemming and stop words, so "likes" finds
#: "like" and a question's "what is my" does not match every fact.
TS_CONFIG = "english"

#: Errors that mean the database (or the way to it) failed, not our SQL.
_BACKEND_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def _lock_id(scope: Scope) -> int:
    """A stable signed 64-bit advisory lock id for one user's facts."""
    digest = hashlib.blake2b(f"{scope.namespace}\x00{scope.user}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def describe_dsn(dsn: str) -> str:
    """``host:port/database`` of a DSN, without user or password (for errors and health)."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
        return f"{host}:{port}{parts.path or '/'}"
    except ValueError:
        return "(unparsable dsn)"


class PostgresBackend(Backend):
    """Facts in a PostgreSQL table.

    The schema (table, generated ``tsvector`` column, GIN and recency indexes, and the
    schema itself for ``schema.table``) is created on first start, under an advisory
    lock so that replicas starting together do not race. Every statement is
    parameterized; only the validated table name is interpolated.

    :param dsn: ``postgresql://user:pass@host:port/db``.
    :param table: ``name`` or ``schema.name``.
    :param min_size: pool size at start.
    :param max_size: pool size at most.
    :param timeout: seconds to connect, and for each statement.
    """

    kind = "postgres"

    def __init__(self, dsn: str, table: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.table = table
        self.schema, _, self.name = table.rpartition(".")
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.label = f"{describe_dsn(dsn)} table {table}"
        self._pool: asyncpg.Pool | None = None

    def _schema_sql(self) -> list[str]:
        t, n = self.table, self.name
        schema = [f"CREATE SCHEMA IF NOT EXISTS {self.schema}"] if self.schema else []
        return [
            *schema,
            f"""CREATE TABLE IF NOT EXISTS {t} (
                namespace text NOT NULL,
                user_id text NOT NULL,
                key text NOT NULL,
                value text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                search tsvector GENERATED ALWAYS AS
                    (to_tsvector('{TS_CONFIG}'::regconfig, key || ' ' || value)) STORED,
                PRIMARY KEY (namespace, user_id, key)
            )""",
            f"CREATE INDEX IF NOT EXISTS {n}_search ON {t} USING gin (search)",
            f"CREATE INDEX IF NOT EXISTS {n}_recent ON {t} (namespace, user_id, updated_at DESC)",
        ]

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the pool and the schema; on failure nothing is left open."""
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self.dsn, min_size=self.min_size, max_size=self.max_size,
            timeout=self.timeout, command_timeout=self.timeout, reset=_no_reset,
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                # One creator at a time (replicas, agents): CREATE ... IF NOT EXISTS is not
                # safe against a concurrent CREATE of the same name.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(Scope("schema", self.table)))
                for statement in self._schema_sql():
                    await conn.execute(statement)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise asyncpg.InterfaceError("the pool is not open")
        return self._pool

    def is_backend_error(self, exc: BaseException) -> bool:
        """asyncpg errors, and network errors on the way to the server."""
        return isinstance(exc, _BACKEND_ERRORS)

    # -- operations --------------------------------------------------------------------------

    async def ping(self) -> None:
        """``SELECT 1``."""
        await self._db().fetchval("SELECT 1")

    async def put(self, scope: Scope, key: str, value: str, max_memories: int) -> PutOutcome:
        """``INSERT .. ON CONFLICT DO UPDATE`` after a count, in one transaction under the
        user's advisory lock (so concurrent writers cannot both pass the cap)."""
        t = self.table
        async with self._db().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(scope))
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, coalesce(bool_or(key = $3), false) AS present FROM {t} "
                "WHERE namespace = $1 AND user_id = $2",
                scope.namespace, scope.user, key,
            )
            assert row is not None
            if not row["present"] and row["n"] >= max_memories:
                return "full"
            await conn.execute(
                f"INSERT INTO {t} (namespace, user_id, key, value) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (namespace, user_id, key) "
                "DO UPDATE SET value = EXCLUDED.value, updated_at = clock_timestamp()",
                scope.namespace, scope.user, key, value,
            )
        return "updated" if row["present"] else "created"

    async def delete(self, scope: Scope, key: str) -> bool:
        """One ``DELETE``."""
        status = await self._db().execute(
            f"DELETE FROM {self.table} WHERE namespace = $1 AND user_id = $2 AND key = $3",
            scope.namespace, scope.user, key,
        )
        return bool(status != "DELETE 0")

    async def listing(self, scope: Scope, limit: int) -> Listing:
        """Facts by key with the total (a window count: one statement, one snapshot)."""
        rows = await self._db().fetch(
            "SELECT key, value, extract(epoch FROM updated_at)::float8 AS at, count(*) OVER () AS total "
            f"FROM {self.table} WHERE namespace = $1 AND user_id = $2 ORDER BY key LIMIT $3",
            scope.namespace, scope.user, limit,
        )
        total = rows[0]["total"] if rows else 0
        return Listing([_fact(r) for r in rows], total)

    async def search(self, scope: Scope, terms: list[str], limit: int) -> list[Fact]:
        """``search @@ to_tsquery(a | b | ...)`` ranked by ``ts_rank``. The terms are plain
        words (letters and digits only), so they cannot form tsquery operators."""
        if not terms:
            return []
        rows = await self._db().fetch(
            "SELECT key, value, extract(epoch FROM updated_at)::float8 AS at "
            f"FROM {self.table}, to_tsquery('{TS_CONFIG}'::regconfig, $3) AS q "
            "WHERE namespace = $1 AND user_id = $2 AND search @@ q "
            "ORDER BY ts_rank(search, q) DESC, updated_at DESC LIMIT $4",
            scope.namespace, scope.user, " | ".join(terms), limit,
        )
        return [_fact(r) for r in rows]

    async def recent(self, scope: Scope, limit: int) -> list[Fact]:
        """Newest first."""
        rows = await self._db().fetch(
            "SELECT key, value, extract(epoch FROM updated_at)::float8 AS at "
            f"FROM {self.table} WHERE namespace = $1 AND user_id = $2 ORDER BY updated_at DESC LIMIT $3",
            scope.namespace, scope.user, limit,
        )
        return [_fact(r) for r in rows]

    async def relevant(self, scope: Scope, terms: list[str], limit: int) -> list[Fact]:
        """Matches by ``ts_rank``, then the rest newest first: one statement over the
        user's facts (at most ``max_memories`` rows)."""
        if not terms:
            return await self.recent(scope, limit)
        rows = await self._db().fetch(
            "SELECT key, value, extract(epoch FROM updated_at)::float8 AS at "
            f"FROM {self.table}, to_tsquery('{TS_CONFIG}'::regconfig, $3) AS q "
            "WHERE namespace = $1 AND user_id = $2 "
            "ORDER BY search @@ q DESC, ts_rank(search, q) DESC, updated_at DESC LIMIT $4",
            scope.namespace, scope.user, " | ".join(terms), limit,
        )
        return [_fact(r) for r in rows]


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: these statements leave no session state
    (locks are transaction-scoped; no LISTEN, cursors or SET), and the reset would cost a
    round trip per operation."""


def _fact(row: Any) -> Fact:
    return Fact(row["key"], row["value"], row["at"])

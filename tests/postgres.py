"""The PostgreSQL of the tests: where it is, and a schema of one test run's own.

Trust auth on this machine and in CI; ``ROBUTLER_TEST_PG_DSN`` points elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

#: The database every PostgreSQL test uses.
PG_DSN = os.environ.get("ROBUTLER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pg_execute(sql: str) -> None:
    """Run ``sql`` on the test database (from synchronous code: fixtures)."""

    async def run() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """A schema unique to this test run (parallel runs never collide), dropped after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    pg_execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        pg_execute(f"DROP SCHEMA {schema} CASCADE")


__all__ = ["PG_DSN", "pg_execute", "pg_schema"]

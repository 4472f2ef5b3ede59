"""Fixtures of the agent store tests: the real PostgreSQL of this machine, a schema of
this run's own (dropped at the end), a fresh table per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

#: The PostgreSQL the tests use (trust auth on this machine and in CI).
AGENTSTORE_PG_DSN = os.environ.get("ROBUTLER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pg(sql: str) -> None:
    """Run ``sql`` on the test database."""

    async def run() -> None:
        conn = await asyncpg.connect(AGENTSTORE_PG_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def agentstore_schema() -> Iterator[str]:
    """A schema unique to this test run (parallel runs never collide), dropped after."""
    schema = f"as_test_{uuid.uuid4().hex[:10]}"
    pg(f"CREATE SCHEMA {schema}")
    yield schema
    pg(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def agentstore_table(agentstore_schema: str) -> str:
    """A fresh ``schema.table`` name for one test (the store creates the table)."""
    return f"{agentstore_schema}.agents_{uuid.uuid4().hex[:10]}"

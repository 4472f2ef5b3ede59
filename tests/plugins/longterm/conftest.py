"""Fixtures of the long-term memory tests: a backend config per backend, on the real
PostgreSQL of this machine in a schema of its own (dropped at the end)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

#: The PostgreSQL the tests use (trust auth on this machine and in CI).
LONGTERM_PG_DSN = os.environ.get("ROBUTLER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _pg(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(LONGTERM_PG_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def longterm_pg_schema() -> Iterator[str]:
    """A schema unique to this test run (so parallel runs never collide), dropped after."""
    schema = f"lt_test_{uuid.uuid4().hex[:10]}"
    _pg(f"CREATE SCHEMA {schema}")
    yield schema
    _pg(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def longterm_pg_table(longterm_pg_schema: str) -> str:
    """A fresh ``schema.table`` name for one test."""
    return f"{longterm_pg_schema}.t_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgres"])
def longterm_backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The backend part of a ``long_term_memory`` config, once per backend."""
    if request.param == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "memory" / "longterm.db")}
    table = request.getfixturevalue("longterm_pg_table")
    return {"backend": "postgres", "dsn": LONGTERM_PG_DSN, "table": table}

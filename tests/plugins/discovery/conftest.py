"""Fixtures of the discovery tests: a registry backend config per backend, on the real
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
DISCOVERY_PG_DSN = os.environ.get("ROBUTLER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _pg(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(DISCOVERY_PG_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def discovery_pg_schema() -> Iterator[str]:
    """A schema unique to this test run (so parallel runs never collide), dropped after."""
    schema = f"disc_test_{uuid.uuid4().hex[:10]}"
    _pg(f"CREATE SCHEMA {schema}")
    yield schema
    _pg(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def discovery_pg_table(discovery_pg_schema: str) -> str:
    """A fresh ``schema.table`` name for one test."""
    return f"{discovery_pg_schema}.r_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgres"])
def registry_backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The backend part of a ``plugins.discovery.registry`` config, once per backend."""
    if request.param == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "registry" / "registry.db")}
    table = request.getfixturevalue("discovery_pg_table")
    return {"backend": "postgres", "dsn": DISCOVERY_PG_DSN, "table": table}

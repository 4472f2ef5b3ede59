"""Fixtures of the payments tests (all prefixed ``payments_``): ledger settings per backend,
on a SQLite file under ``tmp_path`` or in a PostgreSQL schema of its own (dropped after)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from robutler_plugin_payments import LedgerConfig, make_ledger
from robutler_plugin_payments.ledger import Ledger

from .support import PAYMENTS_PG_DSN


def drop_schema(schema: str) -> None:
    """Drop a test schema (and everything in it)."""

    async def run() -> None:
        conn = await asyncpg.connect(PAYMENTS_PG_DSN, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def payments_pg_schema() -> Iterator[str]:
    """A schema name unique to this test (parallel runs never collide); dropped after."""
    schema = f"pay_test_{uuid.uuid4().hex[:12]}"
    yield schema
    drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgres"])
def payments_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The ledger part of a payments config, once per backend."""
    if request.param == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "ledger" / "payments.sqlite3")}
    schema = request.getfixturevalue("payments_pg_schema")
    return {"backend": "postgres", "dsn": PAYMENTS_PG_DSN, "schema": schema}


@pytest.fixture
async def payments_admin(payments_settings: dict[str, Any]) -> AsyncIterator[Ledger]:
    """A second, independent handle on the same ledger (what an operator's CLI would use)."""
    import msgspec

    ledger = make_ledger(msgspec.convert(payments_settings, LedgerConfig))
    await ledger.open()
    try:
        yield ledger
    finally:
        await ledger.close()

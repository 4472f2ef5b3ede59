"""Fixtures of the long-term memory tests: a backend config per backend, on the real
PostgreSQL of this machine in a schema of its own (dropped at the end)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import PG_DSN, pg_schema

LONGTERM_PG_DSN = PG_DSN


@pytest.fixture(scope="session")
def longterm_pg_schema() -> Iterator[str]:
    """A schema unique to this test run (so parallel runs never collide), dropped after."""
    with pg_schema("lt_test") as schema:
        yield schema


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

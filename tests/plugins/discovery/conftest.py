"""Fixtures of the discovery tests: a registry backend config per backend, on the real
PostgreSQL of this machine in a schema of its own (dropped at the end)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import PG_DSN, pg_schema

DISCOVERY_PG_DSN = PG_DSN


@pytest.fixture(scope="session")
def discovery_pg_schema() -> Iterator[str]:
    """A schema unique to this test run (so parallel runs never collide), dropped after."""
    with pg_schema("disc_test") as schema:
        yield schema


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

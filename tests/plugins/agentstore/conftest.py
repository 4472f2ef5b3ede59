"""Fixtures of the agent store tests: the real PostgreSQL of this machine, a schema of
this run's own (dropped at the end), a fresh table per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.postgres import PG_DSN, pg_execute, pg_schema

AGENTSTORE_PG_DSN = PG_DSN
#: Run SQL on the test database.
pg = pg_execute


@pytest.fixture(scope="session")
def agentstore_schema() -> Iterator[str]:
    """A schema unique to this test run (parallel runs never collide), dropped after."""
    with pg_schema("as_test") as schema:
        yield schema


@pytest.fixture
def agentstore_table(agentstore_schema: str) -> str:
    """A fresh ``schema.table`` name for one test (the store creates the table)."""
    return f"{agentstore_schema}.agents_{uuid.uuid4().hex[:10]}"

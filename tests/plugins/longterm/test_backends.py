"""The backends directly: a state machine against a dict model (both backends), any
search text is safe, the PostgreSQL schema is created on first start."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from robutler_plugin_longterm.backends import Backend
from robutler_plugin_longterm.backends.postgres import PostgresBackend, describe_dsn
from robutler_plugin_longterm.backends.sqlite import SQLiteBackend
from robutler_plugin_longterm.facts import normalize_key, search_terms
from robutler_plugin_longterm.scope import Scope

from .conftest import LONGTERM_PG_DSN

MAX = 6  # a small cap, so the machine hits it

keys = st.text(alphabet="abcAB _", min_size=1, max_size=6).filter(lambda k: normalize_key(k) != "")
words = st.sampled_from(["apple", "river", "stone", "cloud", "ember", "zinc"])
values = st.lists(words, min_size=1, max_size=3).map(" ".join)


class MemoryMachine(RuleBasedStateMachine):
    """remember / forget / list / search against a dict: the backend must agree at every step."""

    backend: Backend
    loop: asyncio.AbstractEventLoop

    def __init__(self) -> None:
        super().__init__()
        self.scope = Scope("agent", f"user-{uuid.uuid4().hex}")  # a fresh user per run
        self.model: dict[str, str] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    stored = Bundle("stored")

    @rule(target=stored, key=keys, value=values)
    def remember(self, key: str, value: str) -> str:
        key = normalize_key(key)
        outcome = self.run(self.backend.put(self.scope, key, value, MAX))
        if key in self.model:
            assert outcome == "updated"
        elif len(self.model) >= MAX:
            assert outcome == "full"
            return key
        else:
            assert outcome == "created"
        self.model[key] = value
        return key

    @rule(key=stored)
    def forget_stored(self, key: str) -> None:
        assert self.run(self.backend.delete(self.scope, key)) == (key in self.model)
        self.model.pop(key, None)

    @rule(key=keys)
    def forget_any(self, key: str) -> None:
        key = normalize_key(key)
        assert self.run(self.backend.delete(self.scope, key)) == (key in self.model)
        self.model.pop(key, None)

    @rule(key=stored)
    def search_finds_a_stored_value(self, key: str) -> None:
        if key not in self.model:
            return
        word = self.model[key].split()[0]
        found = self.run(self.backend.search(self.scope, [word], 50))
        expected = {k for k, v in self.model.items() if word in v.split()}
        assert {f.key for f in found} == expected
        assert all(self.model[f.key] == f.value for f in found)

    @rule(key=stored)
    def relevant_puts_matches_first_then_the_rest(self, key: str) -> None:
        if key not in self.model:
            return
        word = self.model[key].split()[0]
        found = [f.key for f in self.run(self.backend.relevant(self.scope, [word], 100))]
        matches = {k for k, v in self.model.items() if word in v.split()}
        assert sorted(found) == sorted(self.model)
        assert set(found[: len(matches)]) == matches

    @invariant()
    def listing_matches_the_model(self) -> None:
        listing = self.run(self.backend.listing(self.scope, 100))
        assert listing.total == len(self.model)
        assert [(f.key, f.value) for f in listing.facts] == sorted(self.model.items())


def run_machine(backend: Backend, max_examples: int) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(backend.open())
        MemoryMachine.backend, MemoryMachine.loop = backend, loop
        machine = MemoryMachine.TestCase
        machine.settings = settings(
            max_examples=max_examples, stateful_step_count=25, deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        machine().runTest()
    finally:
        loop.run_until_complete(backend.close())
        loop.close()


def test_sqlite_behaves_like_a_dict(tmp_path: Path) -> None:
    run_machine(SQLiteBackend(str(tmp_path / "m.db"), "facts"), max_examples=60)


def test_postgres_behaves_like_a_dict(longterm_pg_table: str) -> None:
    run_machine(PostgresBackend(LONGTERM_PG_DSN, longterm_pg_table), max_examples=30)


HOSTILE = st.text(max_size=60) | st.sampled_from(['"', "'", "OR", "NEAR(", "a:*", "!&|", "\\", "()", "\x00"])


def test_any_search_text_is_safe(tmp_path: Path, longterm_pg_table: str) -> None:
    """User text goes into FTS5 MATCH and to_tsquery: it must never break the query."""
    scope = Scope("a", "u")
    backends: list[Backend] = [
        SQLiteBackend(str(tmp_path / "m.db"), "facts"), PostgresBackend(LONGTERM_PG_DSN, longterm_pg_table),
    ]
    loop = asyncio.new_event_loop()
    try:
        for backend in backends:
            loop.run_until_complete(backend.open())
            loop.run_until_complete(backend.put(scope, "quote", 'she said "hi" OR NEAR(x) & !y | z:* \'\\', 10))

        @settings(max_examples=150, deadline=None, database=None)
        @given(HOSTILE)
        def search(text: str) -> None:
            for backend in backends:
                found = loop.run_until_complete(backend.search(scope, search_terms(text), 5))
                assert all(f.key == "quote" for f in found)

        search()
        for backend in backends:
            found = loop.run_until_complete(backend.search(scope, search_terms('"hi" NEAR'), 5))
            assert [f.key for f in found] == ["quote"]
    finally:
        for backend in backends:
            loop.run_until_complete(backend.close())
        loop.close()


def test_search_terms_are_plain_words() -> None:
    assert search_terms('What is "my" favourite-colour? OR NEAR(a*)') == [
        "what", "is", "my", "favourite", "colour", "or", "near", "a",
    ]
    assert search_terms("___ !!! ") == []
    assert len(search_terms(" ".join(f"w{i}" for i in range(100)))) == 32


async def test_postgres_schema_is_created_on_first_start(longterm_pg_table: str) -> None:
    schema, _, name = longterm_pg_table.partition(".")
    backend = PostgresBackend(LONGTERM_PG_DSN, longterm_pg_table)
    await backend.open()
    await backend.open()  # idempotent
    await backend.close()
    again = PostgresBackend(LONGTERM_PG_DSN, longterm_pg_table)  # a second start: IF NOT EXISTS
    await again.open()
    await again.close()
    conn = await asyncpg.connect(LONGTERM_PG_DSN)
    try:
        columns = {
            r["column_name"]: (r["data_type"], r["is_generated"])
            for r in await conn.fetch(
                "SELECT column_name, data_type, is_generated FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = $2", schema, name,
            )
        }
        indexes = {r["indexname"]: r["indexdef"] for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2", schema, name,
        )}
    finally:
        await conn.close()
    assert columns["search"] == ("tsvector", "ALWAYS")
    assert {"namespace", "user_id", "key", "value", "created_at", "updated_at"} <= set(columns)
    assert "USING gin (search)" in indexes[f"{name}_search"]
    assert f"{name}_pkey" in indexes


async def test_postgres_concurrent_starts_do_not_race(longterm_pg_table: str) -> None:
    backends = [PostgresBackend(LONGTERM_PG_DSN, longterm_pg_table) for _ in range(4)]
    await asyncio.gather(*(b.open() for b in backends))
    await asyncio.gather(*(b.close() for b in backends))


async def test_postgres_cap_holds_under_concurrent_writers(longterm_pg_table: str) -> None:
    backend = PostgresBackend(LONGTERM_PG_DSN, longterm_pg_table, max_size=8)
    await backend.open()
    try:
        scope = Scope("a", "racer")
        outcomes = await asyncio.gather(*(backend.put(scope, f"k{i}", "v", 5) for i in range(20)))
        assert outcomes.count("created") == 5 and outcomes.count("full") == 15
        assert (await backend.listing(scope, 100)).total == 5
    finally:
        await backend.close()


def test_dsn_description_hides_credentials() -> None:
    assert describe_dsn("postgresql://app:s3cret@db.internal:6543/mem") == "db.internal:6543/mem"
    assert describe_dsn("postgresql:///mem") == "localhost:5432/mem"

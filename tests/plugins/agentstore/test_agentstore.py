"""The agent store against the real PostgreSQL: agents from rows, loaded on their first
request, reloaded when ``updated_at`` moves, removed with their row."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

import robutler_plugin_agentstore as agentstore
import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.check import check_file
from robutler_kernel.testing import kernel_client
from robutler_plugin_agentstore import AgentStore, PluginSettings

from .conftest import AGENTSTORE_PG_DSN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store_kernel(table: str, store: AgentStore, **settings: Any) -> Kernel:
    config = {
        "server": {"metrics_port": None},
        "agents": {"bot": {"model": "scripted/echo"}},
        "plugins": {"agentstore": {"dsn": AGENTSTORE_PG_DSN, "table": table, "refresh_seconds": 5, **settings}},
    }
    kernel = Kernel(config, plugins=[scripted, store], discover=False)
    kernel.dynamic.refresh = 0.0  # the kernel asks on every request; the store's refresh decides
    return kernel


async def chat(client: Any, agent: str) -> Any:
    return await client.post(f"/{agent}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})


def scripted_agent(answer: str, **extra: Any) -> dict[str, Any]:
    return {"model": "scripted/s", "skills": {"scripted": {"scripts": {"s": [{"content": answer}]}}}, **extra}


async def sql(query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(AGENTSTORE_PG_DSN)
    try:
        return await conn.execute(query, *args)
    finally:
        await conn.close()


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["agentstore"] == "robutler_plugin_agentstore"


async def test_the_table_is_created_and_agents_come_from_its_rows(agentstore_table: str) -> None:
    clock = Clock()
    store = AgentStore(clock=clock)
    kernel = store_kernel(agentstore_table, store)
    async with kernel_client(kernel) as client:
        assert await store.names() == []
        await store.put("support", scripted_agent("one", description="from the table"))
        reply = await chat(client, "support")
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "one"
        assert (await client.get("/support")).json()["description"] == "from the table"
        assert "support" in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
        assert (await chat(client, "nobody")).status_code == 404
        health = (await client.get("/health/detailed")).json()["checks"]["agentstore"]
        assert health["status"] == "healthy" and health["detail"] == {"table": agentstore_table, "agents": 1}


async def test_a_row_is_reloaded_when_updated_at_moves_and_only_then(agentstore_table: str) -> None:
    clock = Clock()
    store = AgentStore(clock=clock)
    kernel = store_kernel(agentstore_table, store)
    async with kernel_client(kernel) as client:
        await store.put("support", scripted_agent("one"))
        assert (await chat(client, "support")).json()["choices"][0]["message"]["content"] == "one"
        builds = kernel.dynamic.builds
        await store.put("support", scripted_agent("two"))
        clock.now += 1
        # Within refresh_seconds: the store's answer stands.
        assert (await chat(client, "support")).json()["choices"][0]["message"]["content"] == "one"
        clock.now += 5
        assert (await chat(client, "support")).json()["choices"][0]["message"]["content"] == "two"
        assert kernel.dynamic.builds == builds + 1 and store.validations == 2
        # A changed config without a new updated_at is not seen (the documented contract).
        await sql(f"UPDATE {agentstore_table} SET config = $1::jsonb", json.dumps(scripted_agent("three")))
        clock.now += 6
        assert (await chat(client, "support")).json()["choices"][0]["message"]["content"] == "two"
        assert store.validations == 2
        await sql(f"UPDATE {agentstore_table} SET updated_at = now()")
        clock.now += 6
        assert (await chat(client, "support")).json()["choices"][0]["message"]["content"] == "three"


async def test_a_deleted_row_removes_the_agent(agentstore_table: str) -> None:
    clock = Clock()
    store = AgentStore(clock=clock)
    kernel = store_kernel(agentstore_table, store)
    async with kernel_client(kernel) as client:
        await store.put("support", scripted_agent("one"))
        assert (await chat(client, "support")).status_code == 200
        assert await store.delete("support") is True
        assert await store.delete("support") is False
        clock.now += 6
        reply = await chat(client, "support")
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "agent_not_found"
        assert kernel.agent("support") is None


async def test_a_row_that_does_not_validate_is_an_error_naming_table_and_agent(agentstore_table: str) -> None:
    clock = Clock()
    store = AgentStore(clock=clock)
    kernel = store_kernel(agentstore_table, store)
    async with kernel_client(kernel) as client:
        await store.put("broken", {"model": "gpt-4o", "max_tool_round": 2})
        await store.put("typed", {"model": "scripted/echo", "max_tool_rounds": "many"})
        await store.put("health", {"model": "scripted/echo"})
        await store.put("good", scripted_agent("fine"))
        reply = await chat(client, "broken")
        assert reply.status_code == 500
        assert reply.json()["error"] == {
            "message": f"agentstore table {agentstore_table}, agent 'broken': max_tool_round: unknown key"
            " (did you mean `max_tool_rounds`?)",
            "type": "server_error",
            "param": None,
            "code": "agent_config_error",
        }
        reply = await chat(client, "typed")
        assert reply.json()["error"]["message"] == (
            f"agentstore table {agentstore_table}, agent 'typed': max_tool_rounds: Expected `int`, got `str`"
        )
        # Reserved names are never asked for: the row cannot shadow a kernel route.
        assert (await client.post("/v1/chat/completions", json={"model": "health", "messages": [{"role": "user", "content": "x"}]})).status_code == 404
        assert (await chat(client, "good")).json()["choices"][0]["message"]["content"] == "fine"
        # Mended: served.
        await store.put("broken", scripted_agent("mended"))
        clock.now += 6
        assert (await chat(client, "broken")).json()["choices"][0]["message"]["content"] == "mended"


async def test_a_store_that_goes_down_keeps_known_agents_and_503s_new_ones(agentstore_table: str) -> None:
    clock = Clock()
    store = AgentStore(clock=clock)
    kernel = store_kernel(agentstore_table, store)
    async with kernel_client(kernel) as client:
        await store.put("support", scripted_agent("one"))
        assert (await chat(client, "support")).status_code == 200
        pool = store.pool
        assert pool is not None
        await pool.close()  # the database is gone, as far as the store can tell
        clock.now += 6
        assert (await chat(client, "support")).json()["choices"][0]["message"]["content"] == "one"
        reply = await chat(client, "newcomer")
        assert reply.status_code == 503
        assert reply.json()["error"]["message"].startswith("agentstore: the agent store (127.0.0.1:5432/test) is unavailable")


async def test_not_configured_it_resolves_nothing() -> None:
    store = AgentStore()
    kernel = Kernel({"server": {"metrics_port": None}, "agents": {"bot": {}}}, plugins=[scripted, store], discover=False)
    async with kernel_client(kernel) as client:
        assert (await chat(client, "anyone")).status_code == 404
    assert store.pool is None


async def test_bad_settings_and_an_unreachable_database_stop_the_start(agentstore_table: str) -> None:
    kernel = store_kernel("bad table; drop", AgentStore())
    # The kernel names the plugin and hook that refused to start, with the plugin's words.
    with pytest.raises(Exception, match=re.escape("ConfigError: plugins.agentstore: table `bad table; drop` is not")):
        await kernel.startup()
    kernel = Kernel(
        {"server": {"metrics_port": None}, "plugins": {"agentstore": {"dsn": "postgresql://postgres@127.0.0.1:1/test", "timeout": 1}}},
        plugins=[scripted, AgentStore()],
        discover=False,
    )
    with pytest.raises(Exception, match=r"ConfigError: plugins.agentstore: cannot connect to 127.0.0.1:1/test"):
        await kernel.startup()


def test_check_validates_the_plugins_section(tmp_path: Path) -> None:
    path = tmp_path / "robutler.yaml"
    path.write_text("plugins:\n  agentstore:\n    dsn: postgresql://x@h/db\n    refresh: 3\n    max_pool: 0\n")
    env = {**os.environ, "ROBUTLER_LOAD_PLUGINS": "agentstore,scripted"}
    report = check_file(path, env=env)
    assert report.errors == [f"{path}:4: plugins.agentstore.refresh: unknown key (did you mean `refresh_seconds`?)"]
    path.write_text("plugins:\n  agentstore: {table: robutler_agents}\n")
    report = check_file(path, env=env)
    assert report.errors == [f"{path}:2: plugins.agentstore: Object missing required field `dsn`"]


def test_settings_defaults() -> None:
    settings = msgspec.convert({"dsn": "postgresql://x"}, PluginSettings)
    assert (settings.table, settings.refresh_seconds, settings.create_table) == ("robutler_agents", 5.0, True)
    assert agentstore.ddl("s.t")[0] == "CREATE SCHEMA IF NOT EXISTS s"


async def test_the_module_store_serves_the_entry_point(agentstore_table: str) -> None:
    kernel = Kernel(
        {"server": {"metrics_port": None}, "plugins": {"agentstore": {"dsn": AGENTSTORE_PG_DSN, "table": agentstore_table}}},
        plugins=[scripted, agentstore],
        discover=False,
    )
    async with kernel_client(kernel) as client:
        await agentstore.store.put("support", {"model": "scripted/echo"})
        assert (await chat(client, "support")).status_code == 200
    assert agentstore.store.pool is None  # closed at shutdown



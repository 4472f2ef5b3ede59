"""The tools as a user meets them: through the kernel, driven by the scripted model, on
both backends (SQLite file and the real PostgreSQL)."""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
from pathlib import Path
from typing import Any

from robutler_kernel.testing import kernel_client

from .helpers import chat, memory_kernel


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["longterm"] == "robutler_plugin_longterm"


def tool_json(answer: str, tool: str) -> Any:
    prefix = f"Tool {tool} returned: "
    assert answer.startswith(prefix), answer
    return json.loads(answer[len(prefix):])


async def test_remember_list_recall_forget(longterm_backend: dict[str, Any]) -> None:
    kernel = memory_kernel({"bot": longterm_backend})
    async with kernel_client(kernel) as client:
        said = await chat(client, "bot", 'call remember key="favourite color" value="dark blue"', user="alice")
        assert said == "Tool remember returned: Remembered 'favourite color' (new)."
        await chat(client, "bot", 'call remember key=pet value="a cat named Tom"', user="alice")
        listing = tool_json(await chat(client, "bot", "call list_memories", user="alice"), "list_memories")
        assert listing == {"count": 2, "memories": [
            {"key": "favourite color", "value": "dark blue"}, {"key": "pet", "value": "a cat named Tom"},
        ]}
        found = tool_json(await chat(client, "bot", 'call recall query="what colour? color!"', user="alice"), "recall")
        assert found["matches"] == [{"key": "favourite color", "value": "dark blue"}]
        # stemmed: "cats" finds "cat"
        found = tool_json(await chat(client, "bot", "call recall query=cats", user="alice"), "recall")
        assert [m["key"] for m in found["matches"]] == ["pet"]
        said = await chat(client, "bot", "call forget key=pet", user="alice")
        assert said == "Tool forget returned: Forgot 'pet'."
        said = await chat(client, "bot", "call forget key=pet", user="alice")
        assert said == "Tool forget returned: Nothing was saved under 'pet'."
        found = tool_json(await chat(client, "bot", "call recall query=cat", user="alice"), "recall")
        assert found["matches"] == [] and "list_memories" in found["note"]


async def test_remember_again_updates_and_keys_ignore_case_and_spacing(longterm_backend: dict[str, Any]) -> None:
    kernel = memory_kernel({"bot": longterm_backend})
    async with kernel_client(kernel) as client:
        await chat(client, "bot", 'call remember key="Home  Town" value=Oslo', user="u")
        said = await chat(client, "bot", 'call remember key="home town" value=Bergen', user="u")
        assert said == "Tool remember returned: Remembered 'home town' (updated)."
        listing = tool_json(await chat(client, "bot", "call list_memories", user="u"), "list_memories")
        assert listing["memories"] == [{"key": "home town", "value": "Bergen"}]
        # the search index follows the update: the old value is gone from it
        old = tool_json(await chat(client, "bot", "call recall query=Oslo", user="u"), "recall")
        new = tool_json(await chat(client, "bot", "call recall query=Bergen", user="u"), "recall")
        assert old["matches"] == [] and new["matches"] == [{"key": "home town", "value": "Bergen"}]


async def test_facts_outlive_the_conversation_and_the_process(longterm_backend: dict[str, Any]) -> None:
    async with kernel_client(memory_kernel({"bot": longterm_backend})) as client:
        await chat(client, "bot", "call remember key=name value=Ada", user="ada@example.com")
    async with kernel_client(memory_kernel({"bot": longterm_backend})) as client:  # a restart
        listing = tool_json(await chat(client, "bot", "call list_memories", user="ada@example.com"), "list_memories")
    assert listing["memories"] == [{"key": "name", "value": "Ada"}]


async def test_users_and_agents_are_isolated(longterm_backend: dict[str, Any]) -> None:
    kernel = memory_kernel({"one": longterm_backend, "two": longterm_backend})
    async with kernel_client(kernel) as client:
        await chat(client, "one", "call remember key=secret value=alpha", user="alice")
        await chat(client, "one", "call remember key=secret value=bravo", user="bob")
        await chat(client, "two", "call remember key=secret value=charlie", user="alice")

        async def seen(agent: str, user: str) -> list[dict[str, str]]:
            listing = tool_json(await chat(client, agent, "call list_memories", user=user), "list_memories")
            return listing["memories"]  # type: ignore[no-any-return]

        assert await seen("one", "alice") == [{"key": "secret", "value": "alpha"}]
        assert await seen("one", "bob") == [{"key": "secret", "value": "bravo"}]
        assert await seen("two", "alice") == [{"key": "secret", "value": "charlie"}]
        assert await seen("two", "bob") == []
        # recall and forget are scoped too: bob cannot find or delete alice's fact
        found = tool_json(await chat(client, "one", "call recall query=alpha", user="bob"), "recall")
        assert found["matches"] == []
        assert "Nothing was saved" in await chat(client, "two", "call forget key=secret", user="bob")
        assert await seen("one", "alice") == [{"key": "secret", "value": "alpha"}]


async def test_agents_sharing_a_namespace_share_facts(tmp_path: Path) -> None:
    config = {"path": str(tmp_path / "m.db"), "namespace": "family"}
    kernel = memory_kernel({"one": config, "two": config})
    async with kernel_client(kernel) as client:
        await chat(client, "one", "call remember key=city value=Lyon", user="u")
        listing = tool_json(await chat(client, "two", "call list_memories", user="u"), "list_memories")
    assert listing["memories"] == [{"key": "city", "value": "Lyon"}]


async def test_anonymous_caller_gets_a_clear_tool_error_and_nothing_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    kernel = memory_kernel({"bot": {"path": str(path)}})
    async with kernel_client(kernel) as client:
        said = await chat(client, "bot", "call remember key=a value=b")
    assert said.startswith("Tool remember returned: Error:")
    assert "names no user" in said and "`user`" in said
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM robutler_longterm").fetchone() == (0,)


async def test_authenticated_identity_wins_over_the_user_field(tmp_path: Path) -> None:
    kernel = memory_kernel({"bot": {"path": str(tmp_path / "m.db")}}, identity=True)
    async with kernel_client(kernel) as client:

        async def listed(user: str | None, identity: str | None) -> list[dict[str, str]]:
            headers = {"x-test-identity": identity} if identity else {}
            answer = await chat(client, "bot", "call list_memories", user=user, headers=headers)
            return tool_json(answer, "list_memories")["memories"]  # type: ignore[no-any-return]

        await chat(client, "bot", "call remember key=k value=claimed", user="alice")
        await chat(client, "bot", "call remember key=k value=verified", headers={"x-test-identity": "alice"})
        # mallory is authenticated as herself: naming alice in `user` does not reach alice
        assert await listed("alice", "mallory") == []
        # a `user` field only claims a name: it never reaches the authenticated alice's facts
        assert await listed("alice", None) == [{"key": "k", "value": "claimed"}]
        assert await listed(None, "alice") == [{"key": "k", "value": "verified"}]
        assert await listed("bob", "alice") == [{"key": "k", "value": "verified"}]
    with sqlite3.connect(tmp_path / "m.db") as db:
        stored = sorted(r[0] for r in db.execute("SELECT user_id FROM robutler_longterm"))
    assert stored == ["id:alice", "user:alice"]


async def test_user_from_header_and_identity_only(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    kernel = memory_kernel({
        "hdr": {"path": path, "user_from": ["header:x-user-id"]},
        "strict": {"path": path, "user_from": ["identity"]},
    })
    async with kernel_client(kernel) as client:
        said = await chat(client, "hdr", "call remember key=k value=v", headers={"x-user-id": "carol"})
        assert "Remembered" in said
        # the `user` field is not a source for this agent
        said = await chat(client, "strict", "call list_memories", user="carol")
        assert "names no user" in said and "authenticated identity" in said


async def test_bad_keys_and_values_are_explained_to_the_model(tmp_path: Path) -> None:
    kernel = memory_kernel({"bot": {"path": str(tmp_path / "m.db"), "max_value_chars": 10, "max_key_chars": 5}})
    async with kernel_client(kernel) as client:
        too_long = await chat(client, "bot", 'call remember key=k value="eleven chars"', user="u")
        assert "more than the 10 allowed" in too_long
        long_key = await chat(client, "bot", "call remember key=abcdef value=v", user="u")
        assert "longer than 5 characters" in long_key
        empty = await chat(client, "bot", 'call remember key="  " value=v', user="u")
        assert "the key is empty" in empty
        blank = await chat(client, "bot", 'call remember key=k value=" "', user="u")
        assert "forget" in blank
        listing = tool_json(await chat(client, "bot", "call list_memories", user="u"), "list_memories")
    assert listing == {"count": 0, "memories": []}


async def test_max_memories_refuses_new_keys_but_allows_updates(longterm_backend: dict[str, Any]) -> None:
    kernel = memory_kernel({"bot": {**longterm_backend, "max_memories": 2, "list_limit": 1}})
    async with kernel_client(kernel) as client:
        for key in ("a", "b"):
            await chat(client, "bot", f"call remember key={key} value=one", user="u")
        full = await chat(client, "bot", "call remember key=c value=one", user="u")
        assert "already has 2 memories" in full and "forget one first" in full
        assert "updated" in await chat(client, "bot", "call remember key=a value=two", user="u")
        listing = tool_json(await chat(client, "bot", "call list_memories", user="u"), "list_memories")
    assert listing["count"] == 2 and listing["memories"] == [{"key": "a", "value": "two"}]
    assert "first 1" in listing["note"]


async def test_agent_info_shows_the_backend_not_its_location(tmp_path: Path) -> None:
    kernel = memory_kernel({"bot": {"path": str(tmp_path / "secret-place.db")}})
    async with kernel_client(kernel) as client:
        info = (await client.get("/bot")).json()
    assert info["skill_info"]["long_term_memory"] == {"backend": "sqlite", "inject": False}
    assert "secret-place" not in json.dumps(info)
    assert {"remember", "recall", "forget", "list_memories"} <= {t["name"] for t in info["tools"]}

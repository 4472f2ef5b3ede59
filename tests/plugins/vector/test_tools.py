"""The tools as a user meets them: through the kernel, driven by the scripted model, on
milvus-lite (and on a Milvus-protocol server over http)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from pathlib import Path
from typing import Any

from robutler_kernel.testing import kernel_client

from .conftest import MilvusServer
from .helpers import chat, search, store, tool_json, vector_kernel

DOCS = {
    "revenue": "The quarterly report shows revenue grew twelve percent in Norway",
    "cat": "My cat likes sleeping on the warm laptop keyboard",
    "trip": "Flight to Tokyo on the third of May, hotel near Shinjuku station",
}


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["vector"] == "robutler_plugin_vector"


async def exercise_store_search_delete(config: dict[str, Any]) -> None:
    kernel = vector_kernel({"bot": config})
    async with kernel_client(kernel) as client:
        ids = {name: await store(client, "bot", "alice", text) for name, text in DOCS.items()}
        tagged = await store(client, "bot", "alice", "Notes about the Tokyo flight booking", {"source": "email"})
        hits = await search(client, "bot", "alice", "revenue in Norway", top_k=2)
        assert len(hits) == 2
        assert hits[0]["id"] == ids["revenue"] and hits[0]["text"] == DOCS["revenue"]
        assert hits[0]["score"] > hits[1]["score"]
        hits = await search(client, "bot", "alice", "Tokyo flight", top_k=1)
        assert [h["id"] for h in hits] == [tagged] and hits[0]["metadata"] == {"source": "email"}

        said = await chat(client, "bot", f"call delete_document id={ids['revenue']}", user="alice")
        assert said == f"Tool delete_document returned: Deleted document {ids['revenue']}."
        hits = await search(client, "bot", "alice", "revenue in Norway", top_k=5)
        assert ids["revenue"] not in [h["id"] for h in hits] and len(hits) == 3
        said = await chat(client, "bot", f"call delete_document id={ids['revenue']}", user="alice")
        assert "has no document with id" in said


async def test_store_search_delete_on_milvus_lite(tmp_path: Path) -> None:
    await exercise_store_search_delete({"uri": str(tmp_path / "v.db")})


async def test_store_search_delete_on_a_milvus_server(vector_server: MilvusServer) -> None:
    await exercise_store_search_delete({"uri": vector_server.uri, "collection": "server_docs"})


async def test_top_k_is_honoured_and_capped(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db"), "max_top_k": 3}})
    async with kernel_client(kernel) as client:
        for i in range(5):
            await store(client, "bot", "u", f"note number {i} about gardening")
        assert len(await search(client, "bot", "u", "gardening", top_k=1)) == 1
        assert len(await search(client, "bot", "u", "gardening", top_k=2)) == 2
        assert len(await search(client, "bot", "u", "gardening", top_k=50)) == 3  # max_top_k
        assert len(await search(client, "bot", "u", "gardening", top_k=0)) == 1


async def test_users_and_agents_are_isolated(tmp_path: Path) -> None:
    config = {"uri": str(tmp_path / "v.db")}
    kernel = vector_kernel({"one": config, "two": config})
    async with kernel_client(kernel) as client:
        alice_one = await store(client, "one", "alice", "alice's secret plan for agent one")
        bob_one = await store(client, "one", "bob", "bob's secret plan for agent one")
        alice_two = await store(client, "two", "alice", "alice's secret plan for agent two")

        async def found(agent: str, user: str) -> set[str]:
            return {h["id"] for h in await search(client, agent, user, "secret plan", top_k=10)}

        assert await found("one", "alice") == {alice_one}
        assert await found("one", "bob") == {bob_one}
        assert await found("two", "alice") == {alice_two}
        assert await found("two", "bob") == set()
        # bob cannot delete alice's document, even knowing its id
        said = await chat(client, "one", f"call delete_document id={alice_one}", user="bob")
        assert "has no document with id" in said
        assert await found("one", "alice") == {alice_one}


async def test_hostile_ids_and_user_names_cannot_widen_a_filter(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db")}})
    async with kernel_client(kernel) as client:
        victim = await store(client, "bot", "victim", "the victim's document")
        for hostile in ['" or id != "', "x\\\" or scope != \\\"", f'{victim}" or "1" == "1']:
            said = await chat(client, "bot", f"call delete_document {json.dumps({'id': hostile})}", user="mallory")
            assert "has no document with id" in said
            assert await search(client, "bot", '" or scope != "', "victim document") == []
        assert [h["id"] for h in await search(client, "bot", "victim", "victim document")] == [victim]


async def test_documents_outlive_the_process(tmp_path: Path) -> None:
    config = {"uri": str(tmp_path / "v.db")}
    async with kernel_client(vector_kernel({"bot": config})) as client:
        doc = await store(client, "bot", "u", "remember the milk")
    async with kernel_client(vector_kernel({"bot": config})) as client:
        hits = await search(client, "bot", "u", "milk")
    assert [h["id"] for h in hits] == [doc]


async def test_anonymous_caller_gets_a_clear_tool_error(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db")}})
    async with kernel_client(kernel) as client:
        said = await chat(client, "bot", 'call store_document text="hello"')
    assert said.startswith("Tool store_document returned: Error:") and "names no user" in said


async def test_bad_documents_are_explained_to_the_model(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db"), "max_document_chars": 20, "max_metadata_bytes": 16}})
    async with kernel_client(kernel) as client:
        assert "the document is empty" in await chat(client, "bot", 'call store_document text="  "', user="u")
        assert "split it into smaller" in await chat(
            client, "bot", 'call store_document text="this text is longer than twenty"', user="u"
        )
        assert "no words to index" in await chat(client, "bot", 'call store_document text="?!"', user="u")
        big = json.dumps({"text": "short", "metadata": {"k": "x" * 40}})
        assert "metadata is larger than 16 bytes" in await chat(client, "bot", f"call store_document {big}", user="u")
        assert await search(client, "bot", "u", "short text") == []
        # a query with no words finds nothing (rather than everything)
        result = tool_json(await chat(client, "bot", 'call search_memory query="?!"', user="u"), "search_memory")
        assert result["results"] == [] and "note" in result


async def test_agent_info_and_health(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db")}})
    async with kernel_client(kernel) as client:
        info = (await client.get("/bot")).json()
        checks = (await client.get("/health/detailed")).json()["checks"]
    assert info["skill_info"]["vector_memory"] == {"backend": "milvus-lite", "embedder": "auto", "retrieve": False}
    assert {"store_document", "search_memory", "delete_document"} <= {t["name"] for t in info["tools"]}
    (name, check), = checks.items()
    assert name == f"vector_memory:milvus-lite:{tmp_path / 'v.db'}"
    assert check["status"] == "healthy" and check["detail"]["backend"] == "milvus-lite"


async def test_each_user_source_is_its_own_namespace(tmp_path: Path) -> None:
    """A `user` field only claims a name: it never reaches documents stored for the same
    name from another source (here a trusted proxy's header)."""
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db"), "user_from": ["header:x-user-id", "param"]}})
    async with kernel_client(kernel) as client:
        body = {"messages": [{"role": "user", "content": 'call store_document text="from the proxy"'}]}
        response = await client.post("/bot/chat/completions", json=body, headers={"x-user-id": "alice"})
        assert "stored" in response.json()["choices"][0]["message"]["content"]
        await store(client, "bot", "alice", "claimed in the user field")
        claimed = await search(client, "bot", "alice", "from the proxy claimed in the user field", top_k=5)
    assert [h["text"] for h in claimed] == ["claimed in the user field"]


async def test_concurrent_first_requests_create_the_collection_once(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db")}})
    async with kernel_client(kernel) as client:
        ids = await asyncio.gather(*(store(client, "bot", f"user{i % 3}", f"parallel note {i}") for i in range(8)))
        assert len(set(ids)) == 8
        found = await search(client, "bot", "user0", "parallel note", top_k=10)
    assert len(found) == 3  # user0 stored notes 0, 3 and 6


async def test_a_long_document_is_stored_and_found(tmp_path: Path) -> None:
    long_text = " ".join(f"word{i}" for i in range(700)) + " zebra crossing"  # hashed off the event loop
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db")}})
    async with kernel_client(kernel) as client:
        doc = await store(client, "bot", "u", long_text)
        await store(client, "bot", "u", "a short unrelated note")
        hits = await search(client, "bot", "u", long_text, top_k=1)  # a long query: hashed off the loop too
    assert hits[0]["id"] == doc and hits[0]["text"] == long_text and hits[0]["score"] > 0.99


async def test_documents_survive_milvus_lite_flushes(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db"), "lite_flush_every": 2}})
    async with kernel_client(kernel) as client:
        ids = [await store(client, "bot", "u", f"flushed note {i}") for i in range(5)]
        assert "Deleted" in await chat(client, "bot", f"call delete_document id={ids[0]}", user="u")
        found = {h["id"] for h in await search(client, "bot", "u", "flushed note", top_k=10)}
    assert found == set(ids[1:])

"""Milvus down or unusable: the kernel starts, health names the backend, requests get a
503 naming it and the setting to check, and service resumes when Milvus is back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from robutler_kernel.testing import kernel_client
from robutler_specs import ConfigError

from .conftest import MilvusServer, vector_free_port
from .helpers import chat, search, store, vector_kernel


async def test_unwritable_milvus_lite_path_is_a_503_naming_the_uri(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    uri = str(blocker / "v.db")
    kernel = vector_kernel({"bot": {"uri": uri}})
    async with kernel_client(kernel) as client:  # starts anyway
        message = await chat(client, "bot", 'call store_document text="hello"', user="u", status=503)
        detailed = await client.get("/health/detailed")
        ready = await client.get("/ready")
    assert f"vector memory backend milvus-lite ({uri}, collection robutler_vector_memory)" in message
    assert "check skills.vector_memory.uri" in message and "writable directory" in message
    assert detailed.status_code == 503 and ready.status_code == 503
    (name, check), = detailed.json()["checks"].items()
    assert name == f"vector_memory:milvus-lite:{uri}" and check["status"] == "unhealthy"


async def test_server_down_at_start_then_up(tmp_path: Path) -> None:
    port = vector_free_port()
    kernel = vector_kernel({"bot": {"uri": f"http://127.0.0.1:{port}", "retry_interval": 0, "timeout": 5}})
    async with kernel_client(kernel) as client:
        message = await chat(client, "bot", 'call search_memory query="x"', user="u", status=503)
        assert f"vector memory backend milvus (http://127.0.0.1:{port}" in message
        assert "check skills.vector_memory.uri" in message
        assert (await client.get("/ready")).status_code == 503
        server = await asyncio.to_thread(MilvusServer, tmp_path / "data", port)
        try:
            doc = await store(client, "bot", "u", "back in business")
            assert [h["id"] for h in await search(client, "bot", "u", "business")] == [doc]
            assert (await client.get("/ready")).status_code == 200
        finally:
            await asyncio.to_thread(server.stop)


async def test_server_going_away_mid_run_is_a_bounded_503(vector_server: MilvusServer) -> None:
    kernel = vector_kernel({"bot": {"uri": vector_server.uri, "timeout": 3, "retrieve": {"enabled": True}}})
    async with kernel_client(kernel) as client:
        await store(client, "bot", "u", "stored while the server was up")
        await asyncio.to_thread(vector_server.stop)
        async with asyncio.timeout(20):
            message = await chat(client, "bot", "anything stored?", user="u", status=503)
            checks = (await client.get("/health/detailed")).json()["checks"]
    assert "vector memory backend milvus" in message and "skills.vector_memory.uri" in message
    assert [c["status"] for c in checks.values()] == ["unhealthy"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"uri": "/data/vectors"}, "a milvus-lite file must end in '.db'"),
        ({"collection": "my-docs"}, "letters, digits and _ only"),
        ({"retrieve": {"enabled": True, "min_score": 2}}, "similarity between -1 and 1"),
        ({"embedder": "magic"}, "Invalid enum value 'magic'"),
        ({"metric": "L2"}, "Invalid enum value 'L2'"),
        ({"user_from": []}, "each entry is 'identity', 'param'"),
    ],
)
def test_bad_config_is_a_clear_start_up_error(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"agents\.bot\.skills\.vector_memory") as info:
        vector_kernel({"bot": config})
    assert expected in str(info.value)

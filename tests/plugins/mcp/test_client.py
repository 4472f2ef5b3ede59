"""The mcp skill as a client: an MCP server written with the SDK (``MCPServer``, formerly
``FastMCP``), over stdio and streamable HTTP, used as tools by an agent on the scripted model."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json

import pytest

import robutler_plugin_mcp as mcp
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_plugin_mcp.tools import tool_name

from .support import http_toolserver, say, stdio_server


def bot(servers: dict, **skill: object) -> dict:
    return {"bot": {"model": "scripted/echo", "tool_timeout": 10, "skills": {"mcp": {"servers": servers, **skill}}}}


def test_the_entry_point_is_discoverable() -> None:
    names = [ep.name for ep in importlib.metadata.entry_points(group="robutler.plugins")]
    assert "mcp" in names


def test_tool_names_are_prefixed_and_valid() -> None:
    assert tool_name("files", "read_file") == "files__read_file"
    odd = tool_name("files", "read.file/v2")
    assert odd.startswith("files__read_file_v2_") and len(odd) <= 64
    assert odd != tool_name("files", "read_file_v2")
    long = tool_name("x" * 40, "y" * 40)
    assert len(long) == 64 and long != tool_name("x" * 40, "y" * 41)


async def test_stdio_tools_results_and_mapping() -> None:
    kernel = make_kernel(bot({"t": stdio_server()}), plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        assert await say(client, "call t__add a=2 b=3") == "Tool t__add returned: 5"
        picture = await say(client, "call t__picture")
        assert picture.startswith("Tool t__picture returned: a square\n\n[image/png image, 108 bytes")
        weather = await say(client, "call t__weather city=Oslo")
        assert json.loads(weather.split("returned: ", 1)[1]) == {"city": "Oslo", "degrees": 21}
        failed = await say(client, "call t__fail")
        assert "Error: MCP tool 'fail' of server 't' failed" in failed
        info = (await client.get("/bot")).json()
        servers = info["skill_info"]["mcp"]["servers"]
        assert servers["t"]["up"] and "t__echo" in servers["t"]["tools"]


async def test_schemas_pass_through_to_the_model() -> None:
    kernel = make_kernel(bot({"t": stdio_server()}), plugins=[scripted, mcp])
    await kernel.startup()
    try:
        agent = kernel.agent("bot")
        assert agent is not None
        ctx = agent.context([{"role": "user", "content": "hi"}])
        await agent.hooks.on_connection(ctx)
        tools = agent.permitted_tools(ctx)
        add = tools["t__add"]
        assert add.parameters["properties"]["a"]["type"] == "integer"
        assert add.parameters["required"] == ["a", "b"]
        assert add.description == "Add two numbers."
    finally:
        await kernel.shutdown()


async def test_scope_and_allow_deny() -> None:
    servers = {
        "pub": stdio_server(allow=["add", "e*"], deny=["echo"]),
        "own": stdio_server(scope="owner", allow=["add"]),
    }
    agent = bot(servers)
    agent["bot"]["skills"]["auth"] = {
        "allow_anonymous": True,
        "api_keys": [{"key": "owner-key-000000000000000", "user_id": "me", "scopes": ["owner"]}],
    }
    agent["bot"]["owner"] = "me"
    import robutler_plugin_auth as auth

    kernel = make_kernel(agent, plugins=[scripted, mcp, auth])
    async with kernel_client(kernel) as client:
        assert await say(client, "call pub__add a=1 b=1") == "Tool pub__add returned: 2"
        assert await say(client, "call pub__echo text=x") == "You said: call pub__echo text=x"  # not offered
        assert await say(client, "call pub__picture") == "You said: call pub__picture"  # not offered
        assert await say(client, "call own__add a=1 b=1") == "You said: call own__add a=1 b=1"  # not offered
        owner = {"Authorization": "Bearer owner-key-000000000000000"}
        assert await say(client, "call own__add a=1 b=1", **owner) == "Tool own__add returned: 2"


async def test_a_hanging_server_times_out_and_the_request_finishes() -> None:
    kernel = make_kernel(bot({"t": stdio_server(timeout=1)}), plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        answer = await asyncio.wait_for(say(client, "call t__hang"), 20)
        assert answer == (
            "Tool t__hang returned: Error: MCP tool 'hang' of server 't' did not answer within 1 s "
            "(its timeout); the call was cancelled"
        )
        assert await say(client, "call t__echo text=still") == "Tool t__echo returned: still"


async def test_the_agent_tool_timeout_cuts_a_hanging_server_too() -> None:
    config = bot({"t": stdio_server()})
    config["bot"]["tool_timeout"] = 1
    kernel = make_kernel(config, plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        answer = await asyncio.wait_for(say(client, "call t__hang"), 20)
        assert answer == "Tool t__hang returned: Error: tool 't__hang' timed out after 1 s."


async def test_a_server_that_exits_mid_call_is_a_tool_error_then_restarted() -> None:
    kernel = make_kernel(bot({"t": stdio_server()}), plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        answer = await asyncio.wait_for(say(client, "call t__die"), 20)
        assert "Error: MCP server 't' failed during the call" in answer
        assert "closed the connection" in answer
        health = (await client.get("/health/detailed")).json()["checks"]["mcp:bot:t"]
        # The health check reports it, or (it restarts the server to ping it) is healthy again.
        assert health["status"] in ("unhealthy", "healthy")
        assert await say(client, "call t__echo text=back") == "Tool t__echo returned: back"


async def test_a_crashed_server_shows_in_the_health_check() -> None:
    kernel = make_kernel(bot({"t": stdio_server()}), plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        await say(client, "call t__die")
        skill = next(s for s in kernel.agent("bot").skills if s.name == "mcp")  # type: ignore[union-attr]
        conn = skill.connections["t"]
        assert conn.session is None and "is down: the server closed the connection" in str(conn.error)
        conn._retry_at = float("inf")  # no restart for this check: it must say the server is down
        health = (await client.get("/health/detailed")).json()["checks"]["mcp:bot:t"]
        assert health["status"] == "unhealthy"
        assert "MCP server 't'" in json.dumps(health) and "is down" in json.dumps(health)


async def test_garbage_on_stdout_is_a_tool_error() -> None:
    kernel = make_kernel(bot({"t": stdio_server()}), plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        answer = await asyncio.wait_for(say(client, "call t__garbage"), 20)
        assert "sent something that is not MCP (JSON-RPC)" in answer
        assert await say(client, "call t__add a=1 b=2") == "Tool t__add returned: 3"


async def test_a_server_that_cannot_start_is_reported() -> None:
    config = bot({"gone": {"command": "/nonexistent/mcp-server"}, "t": stdio_server()})
    kernel = make_kernel(config, plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        assert await say(client, "call t__add a=1 b=2") == "Tool t__add returned: 3"
        health = (await client.get("/health/detailed")).json()["checks"]["mcp:bot:gone"]
        assert health["status"] == "unhealthy" and "could not be started" in json.dumps(health)


async def test_tool_list_changes_are_picked_up() -> None:
    kernel = make_kernel(bot({"t": stdio_server()}), plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        assert await say(client, "call t__extra") == "You said: call t__extra"  # not offered
        assert await say(client, "call t__grow") == "Tool t__grow returned: grown"
        for _ in range(100):
            answer = await say(client, "call t__extra")
            if "extra here" in answer:
                break
            await asyncio.sleep(0.05)
        assert answer == "Tool t__extra returned: extra here"


async def test_streamable_http_server() -> None:
    with http_toolserver() as url:
        kernel = make_kernel(bot({"web": {"url": url, "prefix": "w"}}), plugins=[scripted, mcp])
        async with kernel_client(kernel) as client:
            assert await say(client, "call w__add a=20 b=22") == "Tool w__add returned: 42"
            failed = await say(client, "call w__fail")
            assert "Error: MCP tool 'fail' of server 'web' failed" in failed
            garbage = await asyncio.wait_for(say(client, "call w__garbage"), 20)
            assert garbage.startswith("Tool w__garbage returned: Error:")
            assert await say(client, "call w__echo text=ok") == "Tool w__echo returned: ok"


async def test_an_http_server_that_goes_away_is_a_tool_error() -> None:
    with http_toolserver() as url:
        kernel = make_kernel(bot({"web": {"url": url, "timeout": 5}}), plugins=[scripted, mcp])
        async with kernel_client(kernel) as client:
            assert await say(client, "call web__add a=1 b=1") == "Tool web__add returned: 2"
    # The server process is gone now; the kernel's client is too, so start another kernel on
    # the same (closed) URL: its tools were never listed, and the health check says why.
    kernel = make_kernel(bot({"web": {"url": url, "connect_timeout": 3}}), plugins=[scripted, mcp])
    async with kernel_client(kernel) as client:
        assert await say(client, "call web__add a=1 b=1") == "You said: call web__add a=1 b=1"  # not offered
        health = (await client.get("/health/detailed")).json()["checks"]["mcp:bot:web"]
        assert health["status"] == "unhealthy" and "could not be reached" in json.dumps(health)


def test_config_errors_are_clear() -> None:
    with pytest.raises(Exception, match="either a command"):
        make_kernel(bot({"x": {}}), plugins=[scripted, mcp])
    with pytest.raises(Exception, match="http:// or https://"):
        make_kernel(bot({"x": {"url": "ftp://host"}}), plugins=[scripted, mcp])

"""Each agent as an MCP server (``/{agent}/mcp``), driven by the SDK's own ``ClientSession``
over streamable HTTP, and over stdio through ``robutler-kernel mcp-stdio``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import robutler_plugin_auth as auth
import robutler_plugin_mcp as mcp
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, kernel_client, make_kernel

OWNER_KEY = "owner-key-000000000000000"
TOOLS = ["tests.plugins.mcp.tools_for_agent:multiply", "tests.plugins.mcp.tools_for_agent:secret"]


def served(**skill: object) -> dict:
    return {
        "bot": {
            "description": "Answers questions",
            "model": "scripted/echo",
            "owner": "me",
            "tools": TOOLS,
            "skills": {
                "mcp": {"serve": True, **skill},
                "auth": {
                    "allow_anonymous": True,
                    "api_keys": [{"key": OWNER_KEY, "user_id": "me", "scopes": ["owner"]}],
                },
            },
        },
        "quiet": {"model": "scripted/echo", "skills": {"mcp": {}}},
    }


async def test_streamable_http_with_the_sdk_client(hook_recorder) -> None:
    kernel = make_kernel(served(), plugins=[scripted, mcp, auth], recorder=hook_recorder)
    with LiveServer(kernel) as server:
        async with streamable_http_client(f"{server.url}/bot/mcp") as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.capabilities.tools is not None
            listed = {t.name: t for t in (await session.list_tools()).tools}
            assert set(listed) == {"multiply", "ask"}  # the owner's tool is hidden from anonymous
            assert listed["multiply"].input_schema["properties"]["a"]["type"] == "integer"
            result = await session.call_tool("multiply", {"a": 6, "b": 7})
            assert not result.is_error and result.content[0].text == "42"
            bad = await session.call_tool("multiply", {"a": "six"})
            assert bad.is_error and "invalid arguments for tool 'multiply'" in bad.content[0].text
            hidden = await session.call_tool("secret", {})
            assert hidden.is_error and "no tool named 'secret'" in hidden.content[0].text
            asked = await session.call_tool("ask", {"message": "hello there"})
            assert not asked.is_error and asked.content[0].text == "You said: hello there"
    names = hook_recorder.names()
    assert names.count("on_connection") >= 5  # every MCP request, and the ask's own turn
    assert names.count("finalize_connection") == names.count("on_connection")
    assert "before_toolcall" in names and "after_toolcall" in names


async def test_scopes_follow_the_callers_identity() -> None:
    kernel = make_kernel(served(), plugins=[scripted, mcp, auth])
    with LiveServer(kernel) as server:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {OWNER_KEY}"})
        async with http, streamable_http_client(f"{server.url}/bot/mcp", http_client=http) as (read, write), ClientSession(
            read, write
        ) as session:
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == {"multiply", "secret", "ask"}
            result = await session.call_tool("secret", {})
            assert result.content[0].text == "the owner's secret"


async def test_ask_can_be_renamed_or_left_out_and_tools_hidden() -> None:
    kernel = make_kernel(served(ask_tool="", serve_tools=True), plugins=[scripted, mcp, auth])
    with LiveServer(kernel) as server:
        async with streamable_http_client(f"{server.url}/bot/mcp") as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == {"multiply"}
    kernel = make_kernel(served(ask_tool="question", serve_tools=False), plugins=[scripted, mcp, auth])
    with LiveServer(kernel) as server:
        async with streamable_http_client(f"{server.url}/bot/mcp") as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == {"question"}


async def test_off_by_default_and_through_the_lifecycle() -> None:
    kernel = make_kernel(served(), plugins=[scripted, mcp, auth])
    async with kernel_client(kernel) as client:
        off = await client.post("/quiet/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert off.status_code == 404 and "not served over MCP" in off.json()["error"]["message"]
        assert "x-request-id" in off.headers
        unknown = await client.post("/nobody/mcp", json={})
        assert unknown.status_code == 404
        wrong = await client.post("/bot/mcp", json={}, headers={"Authorization": "Bearer wrong-key-0000000000000"})
        assert wrong.status_code == 401
        notice = await client.post(
            "/bot/mcp",
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert notice.status_code == 202 and "x-request-id" in notice.headers
        for method in ("GET", "DELETE"):  # stateless: no stream to open, no session to end
            answer = await client.request(method, "/bot/mcp", headers={"Accept": "text/event-stream"})
            assert answer.status_code == 405 and answer.headers["allow"] == "POST"


async def test_stdio_through_the_bridge_command() -> None:
    kernel = make_kernel(served(), plugins=[scripted, mcp, auth])
    command = shutil.which("robutler-kernel", path=str(Path(sys.executable).parent))
    assert command is not None
    with LiveServer(kernel) as server:
        params = StdioServerParameters(
            command=command, args=["mcp-stdio", "bot", "--url", server.url, "--api-key", OWNER_KEY]
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == {"multiply", "secret", "ask"}
            assert (await session.call_tool("multiply", {"a": 3, "b": 4})).content[0].text == "12"
            asked = await session.call_tool("ask", {"message": "via stdio"})
            assert asked.content[0].text == "You said: via stdio"

"""A kernel agent (scripted model, nli skill) calling A2A agents: one built with the a2a-sdk,
another kernel's A2A server, and servers that misbehave. Real sockets on loopback only."""

from __future__ import annotations

from typing import Any

import pytest

import robutler_plugin_a2a as a2a
import robutler_plugin_nli as nli
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, kernel_client, make_kernel

from .support import broken_app, free_port, hangs_up, sdk_app, serve_asgi

LOOPBACK = {"allow_hosts": ["127.0.0.1"], "allow_private": True}


def caller(nli_config: dict[str, Any], **extra: Any) -> Any:
    return make_kernel({"me": {"model": "scripted/echo", "skills": {"nli": nli_config}, **extra}},
                       plugins=[scripted, nli])


def ask(agent: str, message: str = "hello") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"call ask_agent agent={agent} message={message}"}]}


def said(response: Any) -> str:
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    prefix = "Tool ask_agent returned: "
    assert content.startswith(prefix), content
    return content[len(prefix):]


@pytest.fixture(scope="module")
def sdk_agent() -> Any:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve_asgi(sdk_app(base), port=port) as url:
        yield url


async def test_ask_agent_calls_an_agent_built_with_the_sdk(sdk_agent: str) -> None:
    async with kernel_client(caller(LOOPBACK)) as client:
        answer = await client.post("/me/chat/completions", json=ask(f"a2a+{sdk_agent}"))
        question = await client.post("/me/chat/completions", json=ask(f"a2a+{sdk_agent}", "question"))
        failure = await client.post("/me/chat/completions", json=ask(f"a2a+{sdk_agent}", "fail"))
    assert said(answer) == "echo: hello"
    assert said(question) == "Which order do you mean?"  # input-required: the question is the answer
    assert "Error:" in said(failure) and "failed" in said(failure) and "the database is down" in said(failure)


async def test_a_peer_with_protocol_a2a_serves_ask_agent_and_handoffs(sdk_agent: str) -> None:
    peers = {"echo": {"url": sdk_agent, "protocol": "a2a", "description": "an A2A echo"}}
    kernel = caller({**LOOPBACK, "peers": peers}, handoffs=[{"agent": sdk_agent, "name": "echo"}])
    async with kernel_client(kernel) as client:
        by_name = await client.post("/me/chat/completions", json=ask("echo"))
        handoff = await client.post("/me/chat/completions", json={"messages": [
            {"role": "user", "content": "call transfer_to_echo"}]})
        streamed = await client.post("/me/chat/completions", json={"stream": True, "messages": [
            {"role": "user", "content": "call transfer_to_echo"}]})
    assert said(by_name) == "echo: hello"
    assert handoff.status_code == 200, handoff.text
    assert handoff.json()["choices"][0]["message"]["content"] == "echo: call transfer_to_echo"
    assert "echo: call transfer_to_echo" in streamed.text.replace('","', "")


async def test_a_kernel_calls_another_kernels_a2a_server() -> None:
    target = make_kernel({"helper": {"model": "scripted/echo", "skills": {"a2a": {}}}}, plugins=[scripted, a2a])
    with LiveServer(target) as live:
        async with kernel_client(caller(LOOPBACK)) as client:
            answer = await client.post("/me/chat/completions", json=ask(f"a2a+{live.url}/helper", "ping"))
    assert said(answer) == "You said: ping"


async def test_the_ssrf_guard_covers_a2a_urls_and_the_cards_endpoint(sdk_agent: str) -> None:
    elsewhere = broken_app("http://169.254.169.254/rpc")
    with serve_asgi(elsewhere) as url:
        async with kernel_client(caller({"allow_hosts": ["127.0.0.1"]})) as client:
            metadata = await client.post("/me/chat/completions", json=ask(f"a2a+{url}"))
        async with kernel_client(caller({})) as client:
            loopback = await client.post("/me/chat/completions", json=ask(f"a2a+{sdk_agent}"))
    assert "Error:" in said(metadata) and "169.254.169.254" in said(metadata)
    assert "Error:" in said(loopback) and "loopback" in said(loopback)


# -- bad input: a clear tool error, and the request finishes ----------------------------------


async def test_a_server_answering_garbage_is_a_tool_error() -> None:
    port = free_port()
    with serve_asgi(broken_app(f"http://127.0.0.1:{port}/garbage"), port=port) as url:
        async with kernel_client(caller(LOOPBACK)) as client:
            answer = await client.post("/me/chat/completions", json=ask(f"a2a+{url}"))
    assert "Error:" in said(answer) and "did not answer with JSON-RPC" in said(answer)


async def test_a_server_that_hangs_is_cut_at_the_timeout() -> None:
    port = free_port()
    with serve_asgi(broken_app(f"http://127.0.0.1:{port}/hang"), port=port) as url:
        async with kernel_client(caller({**LOOPBACK, "timeout": 1})) as client:
            answer = await client.post("/me/chat/completions", json=ask(f"a2a+{url}"))
    assert "Error:" in said(answer) and "did not answer within 1 s" in said(answer)


async def test_a_server_that_exits_mid_call_is_a_tool_error() -> None:
    with hangs_up() as rpc:
        with serve_asgi(broken_app(rpc)) as url:
            async with kernel_client(caller(LOOPBACK)) as client:
                answer = await client.post("/me/chat/completions", json=ask(f"a2a+{url}"))
    assert "Error:" in said(answer) and "connection" in said(answer).lower()


async def test_no_card_is_a_tool_error() -> None:
    port = free_port()
    async with kernel_client(caller(LOOPBACK)) as client:
        answer = await client.post("/me/chat/completions", json=ask(f"a2a+http://127.0.0.1:{port}"))
    assert "Error:" in said(answer) and "could not be reached" in said(answer)

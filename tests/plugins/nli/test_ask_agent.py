"""``ask_agent`` against an OpenAI-compatible callee on a loopback port: what is sent, what
comes back, every way the callee can fail (a tool error the model reads), the SSRF guard,
and the Python API for skills."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

import robutler_plugin_nli as nli
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import closed_port, kernel_client, make_kernel
from robutler_specs import Message

from .support import (
    ALICE_KEY,
    agent_a,
    alice,
    callee,
    chat,
    kernel,
    ledger,
    ledger_settings,
    micro,
    tool_said,
)

LOOPBACK = {"allow_hosts": ["127.0.0.1"]}


def plain(nli_config: dict[str, Any] | None = None, **extra: Any) -> Any:
    """A kernel whose agent ``a`` has only the nli skill (no auth, no payments)."""
    config = {"a": {"model": "scripted/echo", "skills": {"nli": nli_config or {}}, **extra}}
    return make_kernel(config, plugins=[scripted, nli])


def ask(agent: str, message: str = "ping") -> dict[str, Any]:
    return chat(f"call ask_agent agent={agent} message={message}")


def test_the_entry_point_is_discoverable() -> None:
    names = [ep.name for ep in importlib.metadata.entry_points(group="robutler.plugins")]
    assert "nli" in names


async def test_the_callee_gets_the_message_the_chain_the_budget_and_the_peers_key_only(tmp_path: Path) -> None:
    settings = ledger_settings(tmp_path, "a")
    async with callee() as server, ledger(settings) as book:
        await book.create_account("alice", micro(10))
        peers = {"ok": {"url": f"{server.url}/ok/", "api_key": "sk-peer", "max_credits": 0.3},
                 "tok": {"url": f"{server.url}/ok", "payment_token": "rpt_peer"}}
        k = kernel({"a": agent_a(settings, nli_config={**LOOPBACK, "peers": peers})})
        async with kernel_client(k) as client:
            by_name = await client.post("/a/chat/completions", json=ask("ok"), headers=alice())
            by_url = await client.post("/a/chat/completions", json=ask(f"{server.url}/ok"),
                                       headers=alice(**{"X-Authorized-Amount": "0.7"}))
            by_token = await client.post("/a/chat/completions", json=ask("tok"), headers=alice())
    assert tool_said(by_name) == "pong" and tool_said(by_url) == "pong" and tool_said(by_token) == "pong"
    (name, headers, body), (_, url_headers, _), (_, token_headers, _) = server.requests
    assert token_headers["x-payment-token"] == "rpt_peer" and "authorization" not in token_headers
    assert name == "ok" and body == {"messages": [{"role": "user", "content": "ping"}], "stream": False}
    assert headers["x-robutler-chain"] == "a"
    assert headers["authorization"] == "Bearer sk-peer"   # the peer's key, never alice's
    assert headers["x-authorized-amount"] == "0.3"         # 0.5 left of 1 reserved, capped by max_credits
    # A URL that is a peer's URL is called with that peer's credentials (the first peer of it)
    assert url_headers["authorization"] == "Bearer sk-peer"
    assert url_headers["x-authorized-amount"] == "0.2"     # 0.7 authorized by alice, minus A's fee: 0.2 < cap
    assert ALICE_KEY not in str(server.requests)
    # The callee's cost is passed on to alice once: A's fee plus what the callee charged
    assert by_name.json()["usage"]["cost"] == pytest.approx(0.625)
    assert by_name.headers["X-Robutler-Cost"] == "0.625"


async def test_a_url_of_no_peer_is_called_without_credentials() -> None:
    async with callee() as server:
        async with kernel_client(plain(LOOPBACK)) as client:
            response = await client.post("/a/chat/completions", json=ask(f"{server.url}/ok"),
                                         headers={"Authorization": "Bearer sk-the-callers-own"})
    assert tool_said(response) == "pong"
    [(_, headers, _)] = server.requests
    assert "authorization" not in headers and "x-payment-token" not in headers
    assert "x-authorized-amount" not in headers  # no pricing skill here: no budget to pass on
    assert headers["x-robutler-chain"] == "a"


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("fail", "the agent at http://127.0.0.1:{port}/fail answered 500: model exploded"),
        ("poor", "answered 402: insufficient credits"),
        ("missing", "answered 404: no agent missing"),
        ("notjson", "did not answer with a chat completion"),
        ("big", "sent more than 100000 bytes; raise skills.nli.max_response_bytes"),
        ("slow", "did not answer within 0.5 s; raise skills.nli.timeout"),
        ("redirect", "redirected (302) to http://169.254.169.254/latest/meta-data; redirects are not followed"),
    ],
)
async def test_callee_failures_are_tool_errors_the_model_reads(path: str, said: str) -> None:
    config = {**LOOPBACK, "max_response_bytes": 100_000, "timeout": 0.5}
    async with callee() as server:
        port = server.url.rsplit(":", 1)[1]
        async with kernel_client(plain(config)) as client:
            response = await client.post("/a/chat/completions", json=ask(f"{server.url}/{path}"))
    text = tool_said(response)
    assert text.startswith("Error: ") and said.format(port=port) in text, text


async def test_a_refused_connection_is_a_tool_error() -> None:
    port = closed_port()
    async with kernel_client(plain(LOOPBACK)) as client:
        response = await client.post("/a/chat/completions", json=ask(f"http://127.0.0.1:{port}/x"))
    assert f"Error: the agent at http://127.0.0.1:{port}/x could not be reached" in tool_said(response)


async def test_an_unknown_agent_is_a_tool_error() -> None:
    async with kernel_client(plain()) as client:
        response = await client.post("/a/chat/completions", json=ask("nobody"))
    assert tool_said(response).startswith("Error: no agent named 'nobody'")


async def test_the_default_refuses_private_and_loopback_urls() -> None:
    async with callee() as server:
        port = server.url.rsplit(":", 1)[1]
        urls = [
            f"{server.url}/ok", f"http://localhost:{port}/ok", f"http://[::1]:{port}/ok", "http://10.0.0.7/ok",
            "http://169.254.169.254/latest", "http://100.64.1.1/ok", "ftp://example.com/ok",
        ]
        async with kernel_client(plain()) as client:
            answers = [tool_said(await client.post("/a/chat/completions", json=ask(url))) for url in urls]
    assert server.requests == []  # nothing reached the callee
    for url, text in zip(urls, answers, strict=True):
        assert text.startswith("Error: "), (url, text)
        if not url.startswith("ftp"):
            assert "calls to such addresses are refused" in text and "allow_private" in text, text


async def test_an_allowlist_refuses_other_hosts_and_allow_private_admits_loopback() -> None:
    async with callee() as server:
        port = server.url.rsplit(":", 1)[1]
        async with kernel_client(plain({"allow_hosts": ["agents.example.com"]})) as client:
            refused = await client.post("/a/chat/completions", json=ask(f"{server.url}/ok"))
        async with kernel_client(plain({"allow_private": True})) as client:
            allowed = await client.post("/a/chat/completions", json=ask(f"http://localhost:{port}/ok"))
    assert "is not in this agent's allow_hosts (agents.example.com)" in tool_said(refused)
    assert tool_said(allowed) == "pong"


async def test_a_local_agent_runs_in_process() -> None:
    config = {
        "a": {"model": "scripted/echo", "skills": {"nli": {}}},
        "helper": {"model": "scripted/answer", "skills": {"scripted": {"scripts": {"answer": [{"content": "42"}]}}}},
    }
    k = make_kernel(config, plugins=[scripted, nli])
    async with kernel_client(k) as client:
        response = await client.post("/a/chat/completions", json=ask("helper", "answer?"))
    assert tool_said(response) == "42"
    body = response.json()
    assert "agent" not in body and "x-robutler-agent" not in response.headers  # a answered, not helper
    assert body["usage"]["prompt_tokens"] > 0


async def test_skills_ask_and_stream_through_the_python_api() -> None:
    async with callee() as server:
        k = plain({**LOOPBACK, "peers": {"streamer": {"url": f"{server.url}/stream"}}})
        await k.startup()
        try:
            agent = k.agent("a")
            assert agent is not None
            skill = next(s for s in agent.skills if isinstance(s, nli.NLISkill))
            ctx = agent.context([Message(role="user", content="hi")])
            reply = await skill.ask(ctx, f"{server.url}/ok", "ping")
            chunks = [c async for c in await skill.ask_stream(ctx, "streamer", "count")]
        finally:
            await k.shutdown()
    assert (reply.text, reply.cost, reply.agent) == ("pong", 0.125, f"{server.url}/ok")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    records = [(r.kind, r.name, r.credits, r.paid, r.prompt_tokens) for r in ctx.usage]
    assert records == [("agent", f"{server.url}/ok", 0.125, False, 3), ("agent", f"{server.url}/stream", 0.2, False, 4)]
    assert server.requests[1][2]["stream"] is True and server.requests[1][1]["accept"] == "text/event-stream"


async def test_a_stream_over_the_size_cap_fails() -> None:
    from robutler_specs import RequestError

    async with callee() as server:
        k = plain({**LOOPBACK, "max_response_bytes": 50_000})
        await k.startup()
        try:
            agent = k.agent("a")
            assert agent is not None
            skill = next(s for s in agent.skills if isinstance(s, nli.NLISkill))
            ctx = agent.context([Message(role="user", content="hi")])
            with pytest.raises(RequestError, match="sent more than 50000 bytes"):
                async for _ in await skill.ask_stream(ctx, f"{server.url}/bigstream", "go"):
                    pass
        finally:
            await k.shutdown()


def test_bad_settings_are_start_up_errors() -> None:
    from robutler_specs import ConfigError, PluginError

    for bad in ({"peers": {"x": {"url": "ftp://x"}}}, {"timeout": 0}, {"allow_host": []}):
        with pytest.raises((ConfigError, PluginError, ValueError)):
            plain(bad)

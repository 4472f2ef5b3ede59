"""Two kernels on loopback sockets, each with its own ledger, calling each other: ``ask_agent``
and remote handoffs charge each payer exactly once, budgets are passed on and refused
before any work, and a loop across the two servers is stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from robutler_kernel.testing import LiveServer
from robutler_plugin_payments.ledger import Ledger

from .support import (
    A_AT_B_KEY,
    agent_a,
    agent_b,
    alice,
    chat,
    chunks_of,
    kernel,
    ledger,
    ledger_settings,
    micro,
    tool_said,
)


@contextmanager
def served(agents: dict[str, dict[str, Any]]) -> Iterator[str]:
    """A kernel with these agents on a loopback port: its base URL."""
    with LiveServer(kernel(agents)) as server:
        yield server.url


def peer(url: str, **extra: Any) -> dict[str, Any]:
    """nli settings of agent A: B as peer ``b`` (with A's key there), loopback allowed."""
    return {"allow_hosts": ["127.0.0.1"], "peers": {"b": {"url": url, "api_key": A_AT_B_KEY, **extra}}}


async def spent(book: Ledger, account: str) -> tuple[int, int, int]:
    found = await book.account(account)
    assert found is not None
    return found.available, found.reserved, found.spent


@pytest.fixture
def ledgers(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """SQLite ledgers of server A and server B."""
    return ledger_settings(tmp_path, "a"), ledger_settings(tmp_path, "b")


async def test_ask_agent_charges_each_payer_once(ledgers: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a_settings, b_settings = ledgers
    async with ledger(a_settings) as a_book, ledger(b_settings) as b_book:
        await a_book.create_account("alice", micro(10))
        await b_book.create_account("agent-a", micro(5))
        with served({"b": agent_b(b_settings)}) as b_url:
            with served({"a": agent_a(a_settings, nli_config=peer(f"{b_url}/b"))}) as a_url:
                async with httpx.AsyncClient(timeout=30) as client:
                    response = await client.post(f"{a_url}/a/chat/completions", headers=alice(),
                                                 json=chat("call ask_agent agent=b message=hello"))
        assert tool_said(response) == "You said: hello"
        # B charged agent A's account: its fee and its tokens (2 prompt at 1/1K, 3 completion at 2/1K)
        b_cost = micro("0.25") + 2 * 1000 + 3 * 2000
        assert await spent(b_book, "agent-a") == (micro(5) - b_cost, 0, b_cost)
        # A charged alice its own fee plus what B cost, once
        assert await spent(a_book, "alice") == (micro(10) - micro("0.5") - b_cost, 0, micro("0.5") + b_cost)
        [charge] = [t for t in await a_book.transactions("alice") if t.kind == "charge"]
        assert f'"agents":[{{"agent":"{b_url}/b","credits":"0.258"}}]' in (charge.detail or "")
    usage = response.json()["usage"]
    assert usage["cost"] == pytest.approx(0.758) and response.headers["x-robutler-cost"] == "0.758"


async def test_a_callee_that_needs_more_than_is_authorized_refuses_with_402_before_any_work(
    ledgers: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    a_settings, b_settings = ledgers
    async with ledger(a_settings) as a_book, ledger(b_settings) as b_book:
        await a_book.create_account("alice", micro(10))
        await b_book.create_account("agent-a", micro(5))
        with served({"b": agent_b(b_settings, fee="0.75")}) as b_url:
            with served({"a": agent_a(a_settings, nli_config=peer(f"{b_url}/b"))}) as a_url:
                async with httpx.AsyncClient(timeout=30) as client:
                    # alice reserves 1 credit at A; A's fee leaves 0.5 for B, which needs 0.75
                    response = await client.post(f"{a_url}/a/chat/completions", headers=alice(),
                                                 json=chat("call ask_agent agent=b message=hello"))
                    direct = await client.post(
                        f"{b_url}/b/chat/completions", json=chat("hello"),
                        headers={"Authorization": f"Bearer {A_AT_B_KEY}", "X-Authorized-Amount": "0.5",
                                 "X-Robutler-Chain": "a"},
                    )
        said = tool_said(response)
        assert said.startswith(f"Error: agent 'b' at {b_url}/b answered 402: X-Authorized-Amount authorizes 0.5")
        assert direct.status_code == 402 and direct.json()["error"]["code"] == "authorized_amount_too_low"
        assert await spent(b_book, "agent-a") == (micro(5), 0, 0)      # B did nothing, charged nothing
        assert await spent(a_book, "alice") == (micro("9.5"), 0, micro("0.5"))  # A's own fee only
    assert response.json()["usage"]["cost"] == 0.5


async def test_nothing_left_or_less_than_the_peers_minimum_is_refused_before_calling(
    ledgers: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    a_settings, b_settings = ledgers
    async with ledger(a_settings) as a_book, ledger(b_settings) as b_book:
        await a_book.create_account("alice", micro(10))
        await b_book.create_account("agent-a", micro(5))
        with served({"b": agent_b(b_settings)}) as b_url:
            with served({"a": agent_a(a_settings, nli_config=peer(f"{b_url}/b", min_credits=0.6))}) as a_url:
                async with httpx.AsyncClient(timeout=30) as client:
                    short = await client.post(f"{a_url}/a/chat/completions", headers=alice(),
                                              json=chat("call ask_agent agent=b message=hello"))
                    empty = await client.post(f"{a_url}/a/chat/completions",
                                              headers=alice(**{"X-Authorized-Amount": "0.5"}),
                                              json=chat("call ask_agent agent=b message=hello"))
        assert tool_said(short) == (
            f"Error: 0.5 credits are left of this request's budget, but calling agent 'b' at {b_url}/b needs at "
            "least 0.6 (min_credits); the call was not made"
        )
        assert tool_said(empty).startswith(f"Error: nothing is left of this request's budget to pay agent 'b' at {b_url}/b")
        assert await b_book.transactions("agent-a") == [t for t in await b_book.transactions("agent-a") if t.kind == "topup"]
        assert await spent(b_book, "agent-a") == (micro(5), 0, 0)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_remote_handoff_answers_with_the_chains_cost(
    ledgers: tuple[dict[str, Any], dict[str, Any]], stream: bool,
) -> None:
    a_settings, b_settings = ledgers
    async with ledger(a_settings) as a_book, ledger(b_settings) as b_book:
        await a_book.create_account("alice", micro(10))
        await b_book.create_account("agent-a", micro(5))
        with served({"b": agent_b(b_settings)}) as b_url:
            front = agent_a(a_settings, nli_config=peer(f"{b_url}/b"), model="scripted/route",
                            scripts={"route": [{"tool_calls": [{"name": "transfer_to_b"}]}]},
                            handoffs=[f"{b_url}/b"])
            with served({"front": front}) as a_url:
                async with httpx.AsyncClient(timeout=30) as client:
                    response = await client.post(f"{a_url}/front/chat/completions", headers=alice(),
                                                 json=chat("my bill please", stream=stream))
        assert response.status_code == 200, response.text
        if stream:
            chunks = chunks_of(response.text)
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            usage = chunks[-1]["usage"]
        else:
            text, usage = response.json()["choices"][0]["message"]["content"], response.json()["usage"]
        assert text.strip() == "You said: my bill please"
        # B saw the conversation: 3 prompt words + 1, and answered 5 words
        b_cost = micro("0.25") + 4 * 1000 + 5 * 2000
        assert await spent(b_book, "agent-a") == (micro(5) - b_cost, 0, b_cost)
        assert await spent(a_book, "alice") == (micro(10) - micro("0.5") - b_cost, 0, micro("0.5") + b_cost)
        assert usage["cost"] == pytest.approx((micro("0.5") + b_cost) / 1e6)


async def test_a_loop_across_two_servers_is_stopped(ledgers: tuple[dict[str, Any], dict[str, Any]]) -> None:
    nli_loopback = {"allow_hosts": ["127.0.0.1"]}
    plain_a = {"model": "scripted/echo", "skills": {"nli": nli_loopback}}
    with served({"a": plain_a}) as a_url:
        b = {"model": "scripted/back", "handoffs": [f"{a_url}/a"], "skills": {
            "nli": nli_loopback, "scripted": {"scripts": {"back": [{"tool_calls": [{"name": "transfer_to_a"}]}]}}}}
        with served({"b": b}) as b_url:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(f"{a_url}/a/chat/completions",
                                             json=chat(f"call ask_agent agent={b_url}/b message=hi"))
    said = tool_said(response)
    # b's handoff back to a was refused by a's server; b's model read why, and answered so
    assert said.startswith(f"Tool transfer_to_a returned: Error: the handoff to {a_url}/a failed:"), said
    assert "agent 'a' is already handling this request (a -> b -> a); the handoff loop was stopped" in said

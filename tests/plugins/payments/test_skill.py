"""The payments skill through the kernel's HTTP API, on both ledger backends."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from robutler_kernel.testing import kernel_client
from robutler_plugin_payments.ledger import AccountRef, Ledger, hash_token
from robutler_plugin_payments.skill import PaymentsSkill
from robutler_specs import (
    FunctionCall,
    Identity,
    LLMCall,
    LLMResult,
    Message,
    RequestContext,
    Skill,
    ToolCall,
    Usage,
    hookimpl,
)

from .support import Shop, agent, chat, kernel, micro, user


class SameIds(Skill):
    """A provider that numbers its tool calls per turn (call_0 every round), as some do."""

    name = "sameids"
    provider = "sameids"

    @hookimpl
    def llm_complete(self, call: LLMCall) -> LLMResult | None:
        if call.provider != self.provider:
            return None
        rounds = sum(1 for m in call.messages if m.role == "assistant")
        if rounds < 2:
            lookup = ToolCall(id="call_0", function=FunctionCall(name="lookup", arguments='{"item": "x"}'))
            return LLMResult(message=Message(role="assistant", tool_calls=[lookup]), finish_reason="tool_calls",
                             usage=Usage(1, 1, 2))
        return LLMResult(message=Message(role="assistant", content="done"), usage=Usage(1, 1, 2))

PRICED = {"scripted/*": {"prompt": 2, "completion": 4}}


async def test_402_when_short_says_balance_need_and_how_to_top_up(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro("0.5"))
    k = kernel({"bot": agent(payments_settings, request_fee=1, default_reservation=2)})
    async with kernel_client(k) as client:
        response = await client.post("/bot/chat/completions", json=chat("hi"), headers=user("alice"))
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert "0.5 credits available" in error["message"]
    assert "needs 1 to start a request" in error["message"]
    assert "robutler-kernel payments topup alice" in error["message"]
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (micro("0.5"), 0, 0)


async def test_no_account_anonymous_and_unknown_token_are_402_with_what_to_do(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    k = kernel({"bot": agent(payments_settings)})
    async with kernel_client(k) as client:
        nobody = await client.post("/bot/chat/completions", json=chat("hi"), headers=user("bob"))
        anonymous = await client.post("/bot/chat/completions", json=chat("hi"))
        bad_token = await client.post("/bot/chat/completions", json=chat("hi"), headers={"X-Payment-Token": "rpt_nope"})
    assert nobody.status_code == 402 and nobody.json()["error"]["code"] == "no_credit_account"
    assert "payments account create bob" in nobody.json()["error"]["message"]
    assert anonymous.status_code == 402 and "X-Payment-Token" in anonymous.json()["error"]["message"]
    assert bad_token.status_code == 402 and bad_token.json()["error"]["code"] == "invalid_payment_token"


async def test_fee_tokens_and_tool_add_up_exactly(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    Shop.calls.clear()
    await payments_admin.create_account("alice", micro(100))
    script = {"shop": [{"tool_calls": [{"name": "lookup", "arguments": {"item": "book"}}]},
                       {"content": "The book is in stock, shall I order it?"}]}
    k = kernel({"bot": agent(payments_settings, model="scripted/shop", scripts=script, shop=True,
                             request_fee="0.5", models=PRICED, markup="0.25", default_reservation=10)})
    async with kernel_client(k) as client:
        response = await client.post("/bot/chat/completions", json=chat("is the book in stock?"), headers=user("alice"))
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert Shop.calls == {"lookup": 1}
    # 2 and 4 credits per 1K tokens, plus 25%: 0.0025 and 0.005 credits a token.
    expected = (Decimal("0.5") + Decimal("0.3") + usage["prompt_tokens"] * Decimal("0.0025")
                + usage["completion_tokens"] * Decimal("0.005"))
    assert Decimal(response.headers["X-Robutler-Cost"]) == expected
    assert Decimal(str(usage["cost"])) == expected
    account = await payments_admin.account("alice")
    assert account is not None
    assert (account.available, account.reserved, account.spent) == (micro(100) - micro(expected), 0, micro(expected))
    [charge, _topup] = await payments_admin.transactions("alice")
    assert charge.kind == "charge" and charge.amount == -micro(expected)
    assert charge.request_id == response.json()["id"]
    detail = json.loads(charge.detail or "{}")
    assert detail["fee"] == "0.5" and detail["tools"] == [{"name": "lookup", "credits": "0.3"}]
    assert [c["model"] for c in detail["llm"]] == ["scripted/shop", "scripted/shop"]


async def test_tool_calls_with_reused_ids_are_each_charged(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    Shop.calls.clear()
    await payments_admin.create_account("alice", micro(10))
    config = agent(payments_settings, model="sameids/m", shop=True, request_fee=1, default_reservation=5, models={"*": {}})
    config["skills"]["sameids"] = None
    k = kernel({"bot": config}, SameIds)
    async with kernel_client(k) as client:
        response = await client.post("/bot/chat/completions", json=chat("go"), headers=user("alice"))
    assert response.status_code == 200, response.text
    assert Shop.calls == {"lookup": 2}
    assert response.headers["X-Robutler-Cost"] == "1.6"


async def test_authorized_amount_caps_the_reservation(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_account("alice", micro(100))
    k = kernel({"bot": agent(payments_settings, request_fee=1, default_reservation=50)})
    async with kernel_client(k) as client:
        capped = await client.post("/bot/chat/completions", json=chat("hi"),
                                   headers=user("alice", **{"X-Authorized-Amount": "2.5"}))
        default = await client.post("/bot/chat/completions", json=chat("hi"), headers=user("alice"))
    assert capped.status_code == default.status_code == 200
    held = await payments_admin.reservation(capped.json()["id"])
    assert held is not None and (held.amount, held.charged, held.status) == (micro("2.5"), micro(1), "settled")
    held = await payments_admin.reservation(default.json()["id"])
    assert held is not None and held.amount == micro(50)
    # The cap is an upper bound: an account with less reserves what it has.
    small = await payments_admin.create_account("bob", micro("1.5"))
    async with kernel_client(k) as client:
        partial = await client.post("/bot/chat/completions", json=chat("hi"),
                                    headers=user("bob", **{"X-Authorized-Amount": "2.5"}))
    held = await payments_admin.reservation(partial.json()["id"])
    assert small.available == micro("1.5") and held is not None and held.amount == micro("1.5")


async def test_authorized_amount_below_the_minimum_is_402_and_garbage_is_400(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(100))
    k = kernel({"bot": agent(payments_settings, request_fee="0.5", min_balance=1, default_reservation=5)})
    async with kernel_client(k) as client:
        low = await client.post("/bot/chat/completions", json=chat("hi"),
                                headers=user("alice", **{"X-Authorized-Amount": "0.75"}))
        bad = await client.post("/bot/chat/completions", json=chat("hi"),
                                headers=user("alice", **{"X-Authorized-Amount": "lots"}))
    assert low.status_code == 402
    assert low.json()["error"]["code"] == "authorized_amount_too_low"
    assert "authorizes 0.75 credits" in low.json()["error"]["message"]
    assert "at least 1 credits" in low.json()["error"]["message"]
    assert bad.status_code == 400 and "X-Authorized-Amount" in bad.json()["error"]["message"]
    account = await payments_admin.account("alice")
    assert account is not None and account.available == micro(100)


async def test_a_tool_over_the_reservation_is_refused_to_the_model(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    Shop.calls.clear()
    await payments_admin.create_account("alice", micro(100))
    k = kernel({"bot": agent(payments_settings, shop=True, request_fee=1)})
    async with kernel_client(k) as client:
        response = await client.post("/bot/chat/completions", json=chat("call appraise item=vase"),
                                     headers=user("alice", **{"X-Authorized-Amount": "3"}))
    assert response.status_code == 200
    answer = response.json()["choices"][0]["message"]["content"]
    assert answer.startswith("Tool appraise returned: refused: tool 'appraise' costs 5 credits")
    assert "only 2 of the 3 credits reserved" in answer
    assert Shop.calls == {}
    assert response.headers["X-Robutler-Cost"] == "1"  # the refused tool is not charged


async def test_cost_is_reported_in_the_stream_and_json(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_account("alice", micro(10))
    k = kernel({"bot": agent(payments_settings, request_fee="0.25", models=PRICED)})
    async with kernel_client(k) as client:
        plain = await client.post("/bot/chat/completions", json=chat("hello there"), headers=user("alice"))
        streamed = await client.post("/bot/chat/completions", json=chat("hello there", stream=True), headers=user("alice"))
    usage = plain.json()["usage"]
    expected = Decimal("0.25") + usage["prompt_tokens"] * Decimal("0.002") + usage["completion_tokens"] * Decimal("0.004")
    assert plain.headers["X-Robutler-Cost"] == f"{expected.normalize():f}"
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    final = events[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert Decimal(str(final["usage"]["cost"])) == expected
    account = await payments_admin.account("alice")
    assert account is not None and account.spent == 2 * micro(expected) and account.reserved == 0


async def test_get_agent_shows_prices(payments_settings: dict[str, Any]) -> None:
    k = kernel({"bot": agent(payments_settings, shop=True, request_fee="0.01", markup="0.5",
                             models={"scripted/*": {"prompt": 1, "completion": 3}}, tools={"free_hint": "0.2"})})
    async with kernel_client(k) as client:
        info = (await client.get("/bot")).json()
    prices = info["skill_info"]["payments"]
    assert prices["request_fee"] == "0.01"
    assert prices["models"]["scripted/*"]["prompt_per_1k"] == "1.5"
    assert prices["models"]["scripted/*"]["completion_per_1k"] == "4.5"
    assert prices["models"]["scripted/*"]["base_completion_per_1k"] == "3"
    assert prices["tools"] == {"free_hint": {"credits": "0.2", "per": "call"}}
    tools = {t["name"]: t["pricing"] for t in info["tools"]}
    assert tools["appraise"] == {"credits": 5.0, "per": "call"}


async def test_payment_token_pays_instead_of_the_account(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_account("alice", micro(10))
    await payments_admin.create_token("tok_gift", hash_token("rpt_gift"), micro(3), owner="alice")
    k = kernel({"bot": agent(payments_settings, request_fee=1)})
    async with kernel_client(k) as client:
        answers = [
            await client.post("/bot/chat/completions", json=chat("hi"), headers={"X-Payment-Token": "rpt_gift"})
            for _ in range(4)
        ]
        # With both, the token pays: the caller chose to spend it.
        both = await client.post("/bot/chat/completions", json=chat("hi"),
                                 headers=user("alice", **{"X-Payment-Token": "rpt_gift"}))
    assert [a.status_code for a in answers] == [200, 200, 200, 402]
    assert "the payment token has 0 credits available" in answers[3].json()["error"]["message"]
    assert both.status_code == 402
    token = await payments_admin.account("tok_gift")
    alice = await payments_admin.account("alice")
    assert token is not None and (token.available, token.spent) == (0, micro(3))
    assert alice is not None and (alice.available, alice.spent) == (micro(7), 0)


async def test_expired_reservation_of_a_crashed_process_is_released(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(1))
    # A process reserved everything and died before settling.
    # The TTL leaves the kernel's start-up (which sweeps expired reservations) time to finish
    # well before it: the first request must still see the reservation held.
    held = await payments_admin.reserve(AccountRef(account_id="alice"), "crashed-1", micro(1), micro(1), ttl=3.0)
    k = kernel({"bot": agent(payments_settings, request_fee=1)})
    async with kernel_client(k) as client:
        early = await client.post("/bot/chat/completions", json=chat("hi"), headers=user("alice"))
        await asyncio.sleep(max(0.0, held.expires_at - time.time()) + 0.1)
        late = await client.post("/bot/chat/completions", json=chat("hi"), headers=user("alice"))
    assert early.status_code == 402 and "1 more held by 1 request(s) in progress until " in early.json()["error"]["message"]
    assert late.status_code == 200
    crashed = await payments_admin.reservation("crashed-1")
    assert crashed is not None and crashed.status == "expired"
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (0, 0, micro(1))


async def test_start_up_sweeps_expired_reservations(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_account("alice", micro(5))
    await payments_admin.reserve(AccountRef(account_id="alice"), "crashed-2", micro(2), 0, ttl=0.01)
    await asyncio.sleep(0.05)
    k = kernel({"bot": agent(payments_settings)})
    async with kernel_client(k):
        account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved) == (micro(5), 0)


async def test_reservation_used_up_mid_request_is_402_and_costs_nothing(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(100))
    expensive = {"scripted/*": {"prompt": 100000, "completion": 1}}
    k = kernel({"bot": agent(payments_settings, models=expensive, request_fee=1)})
    async with kernel_client(k) as client:
        response = await client.post("/bot/chat/completions", json=chat("hi"), headers=user("alice"))
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "reservation_exhausted"
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (micro(100), 0, 0)


async def test_max_tokens_is_capped_to_what_the_reservation_pays_for(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(100))
    # 0.1 credits a completion token; 1 credit reserved, fee 0.5, prompt ~0.00x: 4 words fit.
    k = kernel({"bot": agent(payments_settings, models={"scripted/*": {"prompt": "0.001", "completion": 100}},
                             request_fee="0.5", default_reservation=1)})
    async with kernel_client(k) as client:
        response = await client.post("/bot/chat/completions", json=chat("one two three four five six seven"),
                                     headers=user("alice"))
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 4
    assert Decimal(response.headers["X-Robutler-Cost"]) <= 1


async def test_ledger_down_is_503_naming_the_backend_and_setting(tmp_path: Any) -> None:
    down = {"backend": "postgres", "dsn": "postgresql://postgres@127.0.0.1:1/test", "schema": "nowhere", "timeout": 2}
    k = kernel({"bot": agent(down)})
    async with kernel_client(k) as client:
        started = time.monotonic()
        response = await client.post("/bot/chat/completions", json=chat("hi"), headers=user("alice"))
        health = await client.get("/health/detailed")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "payments ledger (postgres" in message and "skills.payments.dsn" in message
    checks = health.json()["checks"]
    [check] = [v for n, v in checks.items() if n.startswith("payments.ledger")]
    assert check["status"] == "unhealthy"


async def test_health_check_passes_on_a_working_ledger(payments_settings: dict[str, Any]) -> None:
    k = kernel({"bot": agent(payments_settings), "other": agent(payments_settings)})
    async with kernel_client(k) as client:
        checks = (await client.get("/health/detailed")).json()["checks"]
    ledger_checks = {n: v for n, v in checks.items() if n.startswith("payments.ledger")}
    assert len(ledger_checks) == 1  # two agents, one shared ledger
    assert next(iter(ledger_checks.values()))["status"] == "healthy"


async def test_a_settlement_cut_off_by_a_stopping_server_is_still_written_once(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    """finalize_connection cancelled while the ledger settles (only a stopping server does
    that): the charge is still written, exactly once, and stop() waits for it."""
    await payments_admin.create_account("alice", micro(10))
    k = kernel({"bot": agent(payments_settings, request_fee=1, default_reservation=2)})
    async with k.lifespan():
        bot = k.agent("bot")
        assert bot is not None
        skill = next(s for s in bot.skills if isinstance(s, PaymentsSkill))
        assert skill.ledger is not None
        ctx = RequestContext(bot.spec, [Message(role="user", content="hi")], headers=user("alice"))
        ctx.identity = Identity(user_id="alice")
        await skill.on_connection(ctx)
        real_settle, gate = skill.ledger.settle, asyncio.Event()

        async def slow_settle(request_id: str, cost: int, detail: str | None = None) -> Any:
            await gate.wait()
            return await real_settle(request_id, cost, detail)

        skill.ledger.settle = slow_settle  # type: ignore[method-assign]
        finalizing = asyncio.ensure_future(skill.finalize_connection(ctx, None))
        await asyncio.sleep(0.05)
        finalizing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await finalizing
        gate.set()
        await asyncio.wait_for(skill.stop(), 10)  # waits for the background settlement
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (micro(9), 0, micro(1))
    charges = [t for t in await payments_admin.transactions("alice") if t.kind == "charge"]
    assert [t.amount for t in charges] == [-micro(1)]

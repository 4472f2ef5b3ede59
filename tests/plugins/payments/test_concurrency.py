"""No charge lost or doubled under concurrency, on both backends."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec

from robutler_kernel.testing import kernel_client
from robutler_plugin_payments import LedgerConfig, make_ledger
from robutler_plugin_payments.ledger import AccountRef, InsufficientCredits, Ledger

from .support import agent, chat, kernel, micro, user


async def test_50_concurrent_requests_on_an_account_that_pays_for_10(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(10))
    k = kernel({"bot": agent(payments_settings, request_fee=1, min_balance=1, default_reservation=1)})
    async with kernel_client(k) as client:
        responses = await asyncio.wait_for(
            asyncio.gather(*(
                client.post("/bot/chat/completions", json=chat(f"request {i}"), headers=user("alice"))
                for i in range(50)
            )),
            60,
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [402] * 40
    assert all(r.headers["X-Robutler-Cost"] == "1" for r in responses if r.status_code == 200)
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (0, 0, micro(10))
    history = await payments_admin.transactions("alice", 100)
    charges = [t for t in history if t.kind == "charge"]
    assert len(charges) == 10 and sum(t.amount for t in charges) == -micro(10)
    assert {t.request_id for t in charges} == {r.json()["id"] for r in responses if r.status_code == 200}


async def test_two_replicas_reserving_and_settling_at_once_keep_the_ledger_exact(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    """Two ledger handles (two processes' worth) race on one account with random costs."""
    await payments_admin.create_account("shared", micro(25))
    replica = make_ledger(msgspec.convert(payments_settings, LedgerConfig))
    await replica.open()
    rng = random.Random(7)
    charged: list[int] = []
    refused = 0

    async def one(ledger: Ledger, i: int) -> None:
        nonlocal refused
        try:
            held = await ledger.reserve(AccountRef(account_id="shared"), f"race-{i}", micro(2), micro(1), ttl=60)
        except InsufficientCredits:
            refused += 1
            return
        await asyncio.sleep(rng.random() / 100)
        settlement = await ledger.settle(f"race-{i}", rng.randint(0, micro(3)))
        again = await ledger.settle(f"race-{i}", micro(3))  # a retry never charges twice
        assert again.already and again.charged == settlement.charged <= held.amount
        charged.append(settlement.charged)

    try:
        await asyncio.wait_for(
            asyncio.gather(*(one(payments_admin if i % 2 else replica, i) for i in range(60))), 60
        )
    finally:
        await replica.close()
    account = await payments_admin.account("shared")
    assert account is not None
    assert account.reserved == 0 and account.available >= 0
    assert account.spent == sum(charged)
    assert account.available + account.spent == micro(25)
    charges = [t for t in await payments_admin.transactions("shared", 200) if t.kind == "charge"]
    assert len(charges) == len(charged) == 60 - refused
    assert -sum(t.amount for t in charges) == account.spent

"""The PostgreSQL ledger's batches lock the right accounts, by index, on a ledger of any age.

A batch locks, in id order, the accounts it touches before it runs (so batches of several
processes cannot deadlock each other). On a new ledger the planner's statistics say the
tables are empty, and a lookup of the batch's request ids as one ``= ANY`` was planned as a
scan of every reservation, in every batch: each batch cost more than the one before. These
tests hold the lookup to one index probe per operation (no sequential scan of the
reservations, however many there are) and check which accounts it locks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from robutler_plugin_payments.ledger import AccountRef
from robutler_plugin_payments.ledger.postgres import PostgresLedger

from .support import PAYMENTS_PG_DSN, micro


@pytest.fixture
async def ledger(payments_pg_schema: str) -> AsyncIterator[PostgresLedger]:
    led = PostgresLedger(PAYMENTS_PG_DSN, schema=payments_pg_schema)
    await led.open()
    yield led
    await led.close()


def _batch(kind: str, requests: list[str], account: str | None, schema: str) -> tuple[str, tuple[Any, ...]]:
    n = len(requests)
    args = ([kind] * n, requests, [account] * n, [None] * n, [micro(1)] * n, [0] * n, ["bench"] * n, [900.0] * n,
            time.time(), "test-owner")
    return f"SELECT * FROM {schema}.apply_ops($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", args


async def test_batches_never_scan_every_reservation(ledger: PostgresLedger, payments_pg_schema: str) -> None:
    await ledger.create_account("alice", micro(10**6))
    conn = await asyncpg.connect(PAYMENTS_PG_DSN)
    try:
        for round_ in range(12):  # past the 5 runs after which a session's plan is generic
            requests = [f"r{round_}-{i}" for i in range(32)]
            async with conn.transaction():
                for kind, account in (("r", "alice"), ("s", None)):
                    sql, args = _batch(kind, requests, account, payments_pg_schema)
                    rows = await conn.fetch(sql, *args)
                    assert [r["o_outcome"] for r in rows] == ["ok"] * 32
                scans = await conn.fetchval(
                    "SELECT pg_stat_get_xact_numscans($1::regclass)", f"{payments_pg_schema}.reservations"
                )
            assert scans == 0, f"round {round_}: {scans} sequential scans of the reservations"
    finally:
        await conn.close()
    account = await ledger.account("alice")
    assert account is not None
    assert (account.reserved, account.spent) == (0, 12 * 32 * micro(1))


async def test_a_batch_locks_the_accounts_it_touches_and_no_other(ledger: PostgresLedger, payments_pg_schema: str) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        await ledger.create_account(name, micro(10))
    await ledger.create_token("tok", "hash-of-tok", micro(10))
    await ledger.reserve(AccountRef(account_id="bob"), "bob-1", micro(1), 0, ttl=60)
    await ledger.reserve(AccountRef(account_id="dave"), "dave-1", micro(1), 0, ttl=60)
    holder = await asyncpg.connect(PAYMENTS_PG_DSN)
    probe = await asyncpg.connect(PAYMENTS_PG_DSN)
    try:
        async with holder.transaction():
            # alice by id, the token by its hash, bob through the reservation a settlement
            # closes; dave's reservation id appears only as a (new) reservation's id.
            await holder.execute(
                f"SELECT {payments_pg_schema}.lock_accounts($1, $2, $3, $4)",
                ["r", "r", "s", "r"], ["new-1", "new-2", "bob-1", "dave-1"],
                ["alice", None, None, None], [None, "hash-of-tok", None, None],
            )
            locked = set()
            for name in ("alice", "tok", "bob", "carol", "dave"):
                try:
                    async with probe.transaction():
                        await probe.execute(
                            f"SELECT 1 FROM {payments_pg_schema}.accounts WHERE id = $1 FOR UPDATE NOWAIT", name
                        )
                except asyncpg.LockNotAvailableError:
                    locked.add(name)
        assert locked == {"alice", "tok", "bob"}
    finally:
        await holder.close()
        await probe.close()

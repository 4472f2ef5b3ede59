"""Group commit: operations that arrive together share one transaction, on both backends,
and each keeps the result (or error) it would have had alone.

- concurrent reservations on one account: those the balance covers succeed, the others get
  their own 402 (InsufficientCredits), and the balance is exact;
- a batch whose transaction fails (the database went away, the write lock never came)
  fails every caller in it with 503, and nothing of it is written;
- a hypothesis property: rounds of concurrent reservations, settlements (repeated ones
  too), releases and unknown ids give the results, balances and history of the same
  operations run one by one against a plain-Python model.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robutler_kernel.testing import kernel_client
from robutler_plugin_payments import LedgerConfig, make_ledger
from robutler_plugin_payments.ledger import (
    AccountNotFound,
    AccountRef,
    InsufficientCredits,
    Ledger,
    Reservation,
    Settlement,
    SQLiteLedger,
    UnknownReservation,
)
from robutler_plugin_payments.ledger.postgres import PostgresLedger
from robutler_specs import ServiceUnavailable

from .conftest import drop_schema
from .support import PAYMENTS_PG_DSN, agent, chat, kernel, micro, user

M = 1_000_000


@pytest.fixture
def payments_ledger(payments_admin: Ledger) -> Ledger:
    """A handle on the ledger (the conftest's own)."""
    return payments_admin


def batches(ledger: Ledger) -> tuple[int, int]:
    """(batches, operations) the ledger's group commit ran (PostgreSQL)."""
    group = getattr(ledger, "_batcher", None)
    return (group.batches, group.operations) if group is not None else (0, 0)


async def test_concurrent_reservations_past_the_balance_fail_alone_and_the_balance_is_exact(
    payments_ledger: Ledger,
) -> None:
    await payments_ledger.create_account("alice", micro(10))
    ref = AccountRef(account_id="alice")
    results = await asyncio.gather(
        *(payments_ledger.reserve(ref, f"r{i}", micro(1), micro(1), ttl=60) for i in range(30)),
        return_exceptions=True,
    )
    held = [r for r in results if isinstance(r, Reservation)]
    short = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(held) == 10 and len(short) == 20 and len(held) + len(short) == len(results)
    # In order: the first ten reservations queued are the ones the balance covered.
    assert [r.request_id for r in held] == [f"r{i}" for i in range(10)]
    assert all(e.available == 0 and e.reserved == micro(10) and e.holds == 10 for e in short)
    before = batches(payments_ledger)
    settled = await asyncio.gather(*(payments_ledger.settle(r.request_id, micro("0.5")) for r in held))
    assert all(s.charged == micro("0.5") and s.released == micro("0.5") for s in settled)
    after = batches(payments_ledger)
    if isinstance(payments_ledger, PostgresLedger):  # ten settlements in fewer transactions
        assert after[1] - before[1] == 10 and after[0] - before[0] < 10
    account = await payments_ledger.account("alice")
    assert account is not None
    assert (account.available, account.reserved, account.spent) == (micro(5), 0, micro(5))
    charges = [t for t in await payments_ledger.transactions("alice", 100) if t.kind == "charge"]
    assert sorted(t.request_id or "" for t in charges) == sorted(r.request_id for r in held)


async def test_one_batch_mixes_outcomes_each_as_if_alone(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(3))
    await payments_ledger.create_account("bob", micro(1))
    await payments_ledger.reserve(AccountRef(account_id="alice"), "old", micro(1), 0, ttl=60)
    alice, bob = AccountRef(account_id="alice"), AccountRef(account_id="bob")
    results = await asyncio.gather(
        payments_ledger.reserve(alice, "a1", micro(5), micro(1), ttl=60),  # takes the 2 left
        payments_ledger.reserve(alice, "a2", micro(1), micro(1), ttl=60),  # nothing left: 402
        payments_ledger.reserve(AccountRef(account_id="nobody"), "n1", micro(1), 0, ttl=60),
        payments_ledger.reserve(bob, "b1", micro(1), micro(1), ttl=60),
        payments_ledger.settle("old", micro(2)),  # capped at its reservation of 1
        payments_ledger.settle("never", micro(1)),
        payments_ledger.release("b1"),  # queued after b1's reservation: releases it
        return_exceptions=True,
    )
    a1, a2, n1, b1, old, never, released = results
    assert isinstance(a1, Reservation) and a1.amount == micro(2)
    assert isinstance(a2, InsufficientCredits) and a2.available == 0
    assert isinstance(n1, AccountNotFound)
    assert isinstance(b1, Reservation) and b1.amount == micro(1)
    assert isinstance(old, Settlement) and old.capped and old.charged == micro(1)
    assert isinstance(never, UnknownReservation)
    assert isinstance(released, Settlement) and (released.charged, released.released) == (0, micro(1))
    assert (await payments_ledger.release("b1")).already
    alice_now = await payments_ledger.account("alice")
    bob_now = await payments_ledger.account("bob")
    assert alice_now is not None and bob_now is not None
    assert (alice_now.available, alice_now.reserved, alice_now.spent) == (0, micro(2), micro(1))
    assert (bob_now.available, bob_now.reserved, bob_now.spent) == (micro(1), 0, 0)


async def test_fifty_http_requests_on_one_account_share_transactions(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(20))
    k = kernel({"bot": agent(payments_settings, request_fee=1, min_balance=1, default_reservation=1)})
    async with kernel_client(k) as client:
        responses = await asyncio.wait_for(asyncio.gather(*(
            client.post("/bot/chat/completions", json=chat(f"request {i}"), headers=user("alice"))
            for i in range(50)
        )), 60)
    assert sorted(r.status_code for r in responses) == [200] * 20 + [402] * 30
    refused = [r.json()["error"] for r in responses if r.status_code == 402]
    assert {e["code"] for e in refused} == {"insufficient_credits"}
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (0, 0, micro(20))


# -- a batch that fails as a whole ------------------------------------------------------------


async def test_a_postgres_batch_cut_off_mid_transaction_fails_every_caller_in_it_with_503(
    payments_pg_schema: str,
) -> None:
    ledger = PostgresLedger(PAYMENTS_PG_DSN, schema=payments_pg_schema, timeout=10)
    await ledger.open()
    await ledger.create_account("alice", micro(100))
    await ledger.create_account("bob", micro(1))
    await ledger.reserve(AccountRef(account_id="alice"), "before", micro(1), 0, ttl=60)
    ref = AccountRef(account_id="alice")
    blocker, holder = await asyncpg.connect(PAYMENTS_PG_DSN), await asyncpg.connect(PAYMENTS_PG_DSN)
    try:
        # bob's row held: a reservation of bob's keeps the writer busy...
        bobs = holder.transaction()
        await bobs.start()
        await holder.execute(f'SELECT 1 FROM "{payments_pg_schema}".accounts WHERE id = $1 FOR UPDATE', "bob")
        busy = asyncio.ensure_future(ledger.reserve(AccountRef(account_id="bob"), "bob1", micro(1), 0, ttl=60))
        await asyncio.sleep(0.1)
        # ...while six reservations of alice's queue: the next batch. alice's row held too,
        # so that batch waits inside its transaction once bob's reservation is through.
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute(f'SELECT 1 FROM "{payments_pg_schema}".accounts WHERE id = $1 FOR UPDATE', "alice")
        cut = [asyncio.ensure_future(ledger.reserve(ref, f"cut{i}", micro(1), 0, ttl=60)) for i in range(6)]
        await asyncio.sleep(0.05)
        await bobs.rollback()
        assert (await busy).amount == micro(1)
        pid = None
        for _ in range(500):  # the batch is seen waiting on the lock (asked outside a transaction)
            pid = await holder.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE '%apply_ops%' AND wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid()"
            )
            if pid is not None:
                break
            await asyncio.sleep(0.01)
        assert pid is not None
        # These queue behind it and form the next batch.
        rest = [asyncio.ensure_future(ledger.reserve(ref, f"r{i}", micro(1), 0, ttl=60)) for i in range(5)]
        rest.append(asyncio.ensure_future(ledger.settle("before", micro(1))))
        await asyncio.sleep(0.05)
        # The server ends the batch's connection mid-transaction (what a restart does).
        await holder.execute("SELECT pg_terminate_backend($1)", pid)
        await locked.rollback()
        failed = await asyncio.gather(*cut, return_exceptions=True)
        assert all(isinstance(r, ServiceUnavailable) and r.status == 503 for r in failed), failed
        assert all("payments ledger" in r.message for r in failed if isinstance(r, ServiceUnavailable))
        # The batch queued meanwhile runs on a new connection and commits.
        done = await asyncio.gather(*rest, return_exceptions=True)
        assert all(isinstance(r, Reservation | Settlement) for r in done), done
    finally:
        await blocker.close()
        await holder.close()
    # Nothing of the failed batch was written; all of the next one was.
    assert [await ledger.reservation(f"cut{i}") for i in range(6)] == [None] * 6
    account = await ledger.account("alice")
    assert account is not None
    assert (account.available, account.reserved, account.spent) == (micro(94), micro(5), micro(1))
    await ledger.close()


async def test_a_sqlite_batch_whose_transaction_cannot_start_fails_every_caller_with_503(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = SQLiteLedger(str(path), timeout=0.3)
    await ledger.open()
    await ledger.create_account("alice", micro(10))
    other = sqlite3.connect(path, isolation_level=None, timeout=5)  # another process's writer
    other.execute("BEGIN IMMEDIATE")
    try:
        ref = AccountRef(account_id="alice")
        results = await asyncio.gather(
            *(ledger.reserve(ref, f"r{i}", micro(1), 0, ttl=60) for i in range(6)),
            ledger.topup("alice", micro(1)),
            return_exceptions=True,
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert all(isinstance(r, ServiceUnavailable) and r.status == 503 for r in results), results
    assert all("database is locked" in r.message for r in results if isinstance(r, ServiceUnavailable))
    account = await ledger.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (micro(10), 0, 0)
    assert [t.kind for t in await ledger.transactions("alice")] == ["topup"]
    # The ledger works again once the lock is free.
    assert (await ledger.reserve(AccountRef(account_id="alice"), "after", micro(1), 0, ttl=60)).amount == micro(1)
    await ledger.close()


# -- the batch semantics against a sequential model ---------------------------------------------


@dataclass
class Model:
    """What the ledger holds, run one operation at a time."""

    balances: dict[str, list[int]]  # account -> [available, reserved, spent]
    holds: dict[str, list[Any]]  # request -> [account, amount, status, charged]

    def reserve(self, account: str, request: str, wanted: int, minimum: int) -> tuple[Any, ...]:
        if account not in self.balances:
            return ("missing",)
        b = self.balances[account]
        if b[0] < minimum:
            return ("short", b[0], b[1])
        amount = min(wanted, b[0])
        b[0] -= amount
        b[1] += amount
        self.holds[request] = [account, amount, "held", 0]
        return ("held", account, amount)

    def close(self, request: str, cost: int, charge: bool) -> tuple[Any, ...]:
        hold = self.holds.get(request)
        if hold is None:
            return ("unknown",)
        if hold[2] != "held":
            return ("already", hold[3])
        charged = min(max(cost if charge else 0, 0), hold[1])
        b = self.balances[hold[0]]
        b[1] -= hold[1]
        b[0] += hold[1] - charged
        b[2] += charged
        hold[2], hold[3] = ("settled" if charge else "released"), charged
        return ("closed", hold[0], charged, hold[1] - charged)


def outcome(result: Any) -> tuple[Any, ...]:
    if isinstance(result, Reservation):
        return ("held", result.account_id, result.amount)
    if isinstance(result, InsufficientCredits):
        return ("short", result.available, result.reserved)
    if isinstance(result, AccountNotFound):
        return ("missing",)
    if isinstance(result, UnknownReservation):
        return ("unknown",)
    if isinstance(result, Settlement):
        if result.already:
            return ("already", result.charged)
        return ("closed", result.account_id, result.charged, result.released)
    raise AssertionError(f"unexpected result {result!r}")


ACCOUNTS = ("a", "b", "nobody")
reserve_op = st.tuples(st.just("reserve"), st.sampled_from(ACCOUNTS), st.integers(0, 4 * M), st.integers(0, 2 * M))
close_op = st.tuples(st.sampled_from(["settle", "release"]), st.integers(0, 40), st.integers(0, 3 * M))
rounds = st.lists(st.one_of(st.lists(reserve_op, min_size=1, max_size=12), st.lists(close_op, min_size=1, max_size=12)),
                  min_size=1, max_size=6)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def payments_model_ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One ledger per backend for every example (each example uses accounts of its own)."""
    if request.param == "sqlite":
        yield {"backend": "sqlite", "path": str(tmp_path_factory.mktemp("model") / "ledger.sqlite3")}
        return
    schema = f"pay_model_{uuid.uuid4().hex[:10]}"
    yield {"backend": "postgres", "dsn": PAYMENTS_PG_DSN, "schema": schema}
    drop_schema(schema)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=rounds)
def test_concurrent_rounds_match_the_sequential_model(
    payments_model_ledger: dict[str, Any], plan: list[list[tuple[Any, ...]]]
) -> None:
    asyncio.run(_check_against_model(payments_model_ledger, plan))


async def _check_against_model(settings_: dict[str, Any], plan: list[list[tuple[Any, ...]]]) -> None:
    tag = uuid.uuid4().hex[:8]
    ledger = make_ledger(msgspec.convert(settings_, LedgerConfig))
    await ledger.open()
    try:
        model = Model({f"a-{tag}": [micro(5), 0, 0], f"b-{tag}": [micro(2), 0, 0]}, {})
        for account, (available, _, _) in model.balances.items():
            await ledger.create_account(account, available)
        made = 0
        for step in plan:
            calls: list[Any] = []
            expected: list[tuple[Any, ...]] = []
            for op in step:
                if op[0] == "reserve":
                    _, who, wanted, minimum = op
                    account, request = f"{who}-{tag}", f"{tag}-{made}"
                    made += 1
                    wanted = max(wanted, minimum)
                    calls.append(ledger.reserve(AccountRef(account_id=account), request, wanted, minimum, ttl=600))
                    expected.append(model.reserve(account, request, wanted, minimum))
                else:
                    kind, n, cost = op
                    request = f"{tag}-{n}"
                    charge = kind == "settle"
                    calls.append(ledger.settle(request, cost) if charge else ledger.release(request))
                    expected.append(model.close(request, cost, charge))
            got = await asyncio.gather(*calls, return_exceptions=True)
            assert [outcome(r) for r in got] == expected
        for account, balance in model.balances.items():
            state = await ledger.account(account)
            assert state is not None and [state.available, state.reserved, state.spent] == balance
            charges = [t for t in await ledger.transactions(account, 1000) if t.kind == "charge"]
            settled = {r: h for r, h in model.holds.items() if h[0] == account and h[2] == "settled"}
            assert sorted((t.request_id, -t.amount) for t in charges) == sorted((r, h[3]) for r, h in settled.items())
    finally:
        await ledger.close()


async def test_an_operation_that_fails_after_writing_is_undone_alone(payments_ledger: Ledger) -> None:
    """A duplicate request id fails at its insert, after the account was updated: only that
    operation is rolled back (SQLite runs the batch again with savepoints; PostgreSQL rolls
    back its subtransaction), the rest of the batch commits."""
    await payments_ledger.create_account("alice", micro(10))
    ref = AccountRef(account_id="alice")
    await payments_ledger.reserve(ref, "taken", micro(1), 0, ttl=60)
    results = await asyncio.gather(
        payments_ledger.reserve(ref, "first", micro(1), 0, ttl=60),
        payments_ledger.reserve(ref, "first", micro(1), 0, ttl=60),  # the same id again
        payments_ledger.reserve(ref, "taken", micro(1), 0, ttl=60),
        payments_ledger.reserve(ref, "second", micro(1), 0, ttl=60),
        return_exceptions=True,
    )
    first, again, taken, second = results
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    unique = (sqlite3.IntegrityError, asyncpg.UniqueViolationError)
    assert isinstance(again, unique) and isinstance(taken, unique), results
    account = await payments_ledger.account("alice")
    assert account is not None and (account.available, account.reserved) == (micro(7), micro(3))


async def test_an_operation_that_fails_the_whole_statement_fails_alone(payments_ledger: Ledger) -> None:
    """An operation the database refuses outright (here a negative hold, against the
    reservations' CHECK constraint; the skill never asks for one) fails the batch statement,
    so nothing of it is written; the batch then runs one operation at a time and only that one
    fails, with the database's own error. Its neighbours keep their results and the balance
    is exact."""
    await payments_ledger.create_account("alice", micro(10))
    ref = AccountRef(account_id="alice")
    await payments_ledger.reserve(ref, "held", micro(2), 0, ttl=60)
    results = await asyncio.gather(
        payments_ledger.reserve(ref, "first", micro(1), 0, ttl=60),
        payments_ledger.reserve(ref, "bad", -micro(1), -micro(2), ttl=60),
        payments_ledger.settle("held", micro(1)),
        payments_ledger.reserve(ref, "last", micro(1), 0, ttl=60),
        return_exceptions=True,
    )
    first, bad, settled, last = results
    assert isinstance(first, Reservation) and isinstance(last, Reservation), results
    assert isinstance(bad, (sqlite3.IntegrityError, asyncpg.CheckViolationError)), results
    assert isinstance(settled, Settlement) and settled.charged == micro(1), results
    account = await payments_ledger.account("alice")
    assert account is not None
    assert (account.available, account.reserved, account.spent) == (micro(7), micro(2), micro(1))
    assert await payments_ledger.reservation("bad") is None

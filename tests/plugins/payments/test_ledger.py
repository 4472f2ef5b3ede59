"""The ledger backends, directly: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from robutler_plugin_payments import LedgerConfig, make_ledger
from robutler_plugin_payments.ledger import (
    AccountExists,
    AccountNotFound,
    AccountRef,
    InsufficientCredits,
    Ledger,
    SQLiteLedger,
    UnknownReservation,
    hash_token,
)
from robutler_specs import ServiceUnavailable

from .support import micro


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def payments_clock() -> Clock:
    return Clock()


@pytest.fixture
async def payments_ledger(payments_settings: dict[str, Any], payments_clock: Clock) -> AsyncIterator[Ledger]:
    ledger = make_ledger(msgspec.convert(payments_settings, LedgerConfig), clock=payments_clock)
    await ledger.open()
    try:
        yield ledger
    finally:
        await ledger.close()


def alice() -> AccountRef:
    return AccountRef(account_id="alice")


async def _state(ledger: Ledger, account_id: str = "alice") -> tuple[int, int, int]:
    account = await ledger.account(account_id)
    assert account is not None
    return account.available, account.reserved, account.spent


async def test_settle_charges_the_cost_releases_the_rest_and_is_idempotent(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(10))
    held = await payments_ledger.reserve(alice(), "r1", micro(4), micro(1), ttl=60, agent="bot")
    assert (held.amount, held.status, held.agent) == (micro(4), "held", "bot")
    assert await _state(payments_ledger) == (micro(6), micro(4), 0)
    first = await payments_ledger.settle("r1", micro("1.25"), '{"why": "test"}')
    assert (first.charged, first.released, first.already, first.capped) == (micro("1.25"), micro("2.75"), False, False)
    second = await payments_ledger.settle("r1", micro(3))
    assert (second.charged, second.already) == (micro("1.25"), True)
    released = await payments_ledger.release("r1")
    assert released.already
    assert await _state(payments_ledger) == (micro("8.75"), 0, micro("1.25"))
    charges = [t for t in await payments_ledger.transactions("alice") if t.kind == "charge"]
    assert [(t.amount, t.request_id, t.detail) for t in charges] == [(-micro("1.25"), "r1", '{"why": "test"}')]


async def test_cost_over_the_reservation_is_capped(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(10))
    await payments_ledger.reserve(alice(), "r1", micro(2), 0, ttl=60)
    settled = await payments_ledger.settle("r1", micro(5))
    assert (settled.charged, settled.released, settled.capped) == (micro(2), 0, True)
    assert await _state(payments_ledger) == (micro(8), 0, micro(2))


async def test_release_gives_everything_back_without_a_charge(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(3))
    await payments_ledger.reserve(alice(), "r1", micro(3), micro(3), ttl=60)
    with pytest.raises(InsufficientCredits) as short:
        await payments_ledger.reserve(alice(), "r2", micro(1), micro(1), ttl=60)
    assert (short.value.available, short.value.reserved, short.value.needed) == (0, micro(3), micro(1))
    released = await payments_ledger.release("r1")
    assert (released.charged, released.released) == (0, micro(3))
    assert (await payments_ledger.settle("r1", micro(1))).already  # released: a late settle does nothing
    assert await _state(payments_ledger) == (micro(3), 0, 0)
    assert [t.kind for t in await payments_ledger.transactions("alice")] == ["topup"]


async def test_reservation_takes_what_is_available_down_to_the_minimum(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(5))
    held = await payments_ledger.reserve(alice(), "r1", micro(8), micro(2), ttl=60)
    assert held.amount == micro(5)
    with pytest.raises(ValueError):
        await payments_ledger.reserve(alice(), "r2", micro(1), micro(2), ttl=60)


async def test_expired_reservations_are_released_lazily_and_by_sweep(payments_ledger: Ledger, payments_clock: Clock) -> None:
    await payments_ledger.create_account("alice", micro(5))
    await payments_ledger.create_account("bob", micro(5))
    await payments_ledger.reserve(alice(), "a1", micro(5), micro(5), ttl=10)
    await payments_ledger.reserve(AccountRef(account_id="bob"), "b1", micro(2), 0, ttl=10)
    payments_clock.now += 5
    with pytest.raises(InsufficientCredits):
        await payments_ledger.reserve(alice(), "a2", micro(1), micro(1), ttl=10)
    payments_clock.now += 6
    # Lazy: alice's next reservation finds her expired hold and releases it first.
    await payments_ledger.reserve(alice(), "a2", micro(1), micro(1), ttl=10)
    assert await _state(payments_ledger) == (micro(4), micro(1), 0)
    assert await _state(payments_ledger, "bob") == (micro(3), micro(2), 0)  # not swept yet
    assert await payments_ledger.expire() == micro(2)
    assert await _state(payments_ledger, "bob") == (micro(5), 0, 0)
    expired = await payments_ledger.reservation("a1")
    assert expired is not None and expired.status == "expired"


async def test_expired_holds_are_released_even_when_the_reservation_still_fails(
    payments_ledger: Ledger, payments_clock: Clock
) -> None:
    await payments_ledger.create_account("alice", micro(5))
    await payments_ledger.reserve(alice(), "old", micro(3), 0, ttl=10)
    await payments_ledger.reserve(alice(), "young", micro(2), 0, ttl=100)
    payments_clock.now += 11
    with pytest.raises(InsufficientCredits) as short:
        await payments_ledger.reserve(alice(), "big", micro(6), micro(6), ttl=10)
    assert (short.value.available, short.value.reserved) == (micro(3), micro(2))
    assert await _state(payments_ledger) == (micro(3), micro(2), 0)
    assert await payments_ledger.reservation("big") is None


async def test_settling_an_expired_reservation_charges_from_available(payments_ledger: Ledger, payments_clock: Clock) -> None:
    await payments_ledger.create_account("alice", micro(5))
    await payments_ledger.reserve(alice(), "slow", micro(2), 0, ttl=10)
    payments_clock.now += 11
    assert await payments_ledger.expire("alice") == micro(2)
    late = await payments_ledger.settle("slow", micro("1.5"))
    assert (late.charged, late.late) == (micro("1.5"), True)
    assert (await payments_ledger.settle("slow", micro("1.5"))).already
    assert await _state(payments_ledger) == (micro("3.5"), 0, micro("1.5"))


async def test_unknown_things_are_errors(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice")
    with pytest.raises(AccountExists):
        await payments_ledger.create_account("alice", micro(1))
    with pytest.raises(AccountNotFound):
        await payments_ledger.topup("nobody", micro(1))
    with pytest.raises(AccountNotFound):
        await payments_ledger.reserve(AccountRef(account_id="nobody"), "r", 0, 0, ttl=1)
    with pytest.raises(AccountNotFound):
        await payments_ledger.reserve(AccountRef(token_hash=hash_token("rpt_x")), "r", 0, 0, ttl=1)
    with pytest.raises(UnknownReservation):
        await payments_ledger.settle("never-reserved", 1)
    assert await payments_ledger.account("nobody") is None
    assert await payments_ledger.reservation("never-reserved") is None


async def test_tokens_are_funded_from_an_account_or_minted(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(10))
    funded = await payments_ledger.create_token("tok_a", hash_token("rpt_a"), micro(4), owner="alice")
    minted = await payments_ledger.create_token("tok_b", hash_token("rpt_b"), micro(2))
    assert (funded.kind, funded.owner, funded.available) == ("token", "alice", micro(4))
    assert (minted.owner, minted.available) == (None, micro(2))
    assert await _state(payments_ledger) == (micro(6), 0, 0)
    with pytest.raises(InsufficientCredits):
        await payments_ledger.create_token("tok_c", hash_token("rpt_c"), micro(7), owner="alice")
    with pytest.raises(AccountNotFound):
        await payments_ledger.create_token("tok_d", hash_token("rpt_d"), micro(1), owner="nobody")
    assert await payments_ledger.account("tok_c") is None  # nothing half-written
    held = await payments_ledger.reserve(AccountRef(token_hash=hash_token("rpt_a")), "t1", micro(1), 0, ttl=60)
    assert held.account_id == "tok_a"
    with pytest.raises(AccountNotFound):  # a user named like a token cannot spend it
        await payments_ledger.reserve(AccountRef(account_id="tok_a"), "t2", micro(1), 0, ttl=60)
    assert [t.kind for t in await payments_ledger.transactions("alice")] == ["transfer_out", "topup"]
    assert [t.kind for t in await payments_ledger.transactions("tok_a")] == ["transfer_in"]


async def test_transactions_newest_first_with_a_limit(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(1))
    for n in range(5):
        await payments_ledger.topup("alice", micro(n + 1), note=f"top-up {n}")
    rows = await payments_ledger.transactions("alice", limit=3)
    assert [(t.amount, t.detail) for t in rows] == [(micro(5), "top-up 4"), (micro(4), "top-up 3"), (micro(3), "top-up 2")]
    assert await payments_ledger.ping() == payments_ledger.describe()


async def test_operations_grouped_in_one_commit_fail_alone(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(1))
    results = await asyncio.gather(
        *(payments_ledger.topup("alice", micro(1)) for _ in range(20)),
        payments_ledger.create_account("alice", micro(5)),  # exists: rolled back alone
        payments_ledger.topup("nobody", micro(1)),
        *(payments_ledger.topup("alice", micro(1)) for _ in range(20)),
        return_exceptions=True,
    )
    errors = [type(r).__name__ for r in results if isinstance(r, BaseException)]
    assert errors == ["AccountExists", "AccountNotFound"]
    assert await _state(payments_ledger) == (micro(41), 0, 0)
    assert len(await payments_ledger.transactions("alice", 100)) == 41


async def test_a_cancelled_caller_does_not_cancel_the_settlement(payments_ledger: Ledger) -> None:
    await payments_ledger.create_account("alice", micro(5))
    await payments_ledger.reserve(alice(), "r1", micro(2), 0, ttl=60)
    settling = asyncio.ensure_future(payments_ledger.settle("r1", micro(1)))
    await asyncio.sleep(0)
    settling.cancel()
    deadline = asyncio.get_running_loop().time() + 5
    while (await payments_ledger.reservation("r1")).status == "held":  # type: ignore[union-attr]
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert await _state(payments_ledger) == (micro(4), 0, micro(1))


async def test_sqlite_file_that_cannot_be_opened_is_503_until_it_can(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    ledger = SQLiteLedger(str(blocker / "ledger.sqlite3"))
    with pytest.raises(ServiceUnavailable) as down:
        await ledger.open()
    assert "sqlite file" in down.value.message and "skills.payments.path" in down.value.message
    blocker.unlink()
    await ledger.open()  # the worker reconnects
    assert (await ledger.create_account("alice", micro(1))).available == micro(1)
    await ledger.close()

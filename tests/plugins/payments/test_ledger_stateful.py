"""A model-based (hypothesis stateful) test of the ledger, on both backends.

Random sequences of top-ups, reservations, settlements (also repeated), releases, clock
jumps and sweeps, checked step by step against a plain-Python model: balances never go
negative, ``available + reserved + spent`` equals what was credited, ``reserved`` is the
sum of the holds, and every result matches the model.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from robutler_plugin_payments.ledger import AccountRef, InsufficientCredits, Ledger, SQLiteLedger
from robutler_plugin_payments.ledger.postgres import PostgresLedger

from .conftest import drop_schema
from .support import PAYMENTS_PG_DSN

T = TypeVar("T")
M = 1_000_000
TTL = 10.0
ACCOUNTS = ("a0", "a1", "a2")
PG_SCHEMA = f"pay_stateful_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", autouse=True)
def payments_stateful_schema() -> Iterator[None]:
    yield
    drop_schema(PG_SCHEMA)


@dataclass
class Hold:
    account: str
    amount: int
    expires_at: float
    status: str = "held"
    charged: int = 0


@dataclass
class Balance:
    available: int = 0
    reserved: int = 0
    spent: int = 0
    credited: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class LedgerMachine(RuleBasedStateMachine):
    """Drives one ledger and a model of it side by side."""

    def make_ledger(self, clock: Clock) -> Ledger:
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.ledger = self.make_ledger(self.clock)
        self.prefix = uuid.uuid4().hex[:8]
        self.model = {name: Balance() for name in ACCOUNTS}
        self.holds: dict[str, Hold] = {}
        self.run(self.ledger.open())
        for name in ACCOUNTS:
            self.run(self.ledger.create_account(self.id(name)))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    def id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def teardown(self) -> None:
        self.run(self.ledger.close())
        self.loop.close()

    def _expire_model(self, account: str | None) -> int:
        freed = 0
        for hold in self.holds.values():
            if hold.status == "held" and hold.expires_at < self.clock.now and account in (None, hold.account):
                hold.status = "expired"
                balance = self.model[hold.account]
                balance.available += hold.amount
                balance.reserved -= hold.amount
                freed += hold.amount
        return freed

    @rule(account=st.sampled_from(ACCOUNTS), amount=st.integers(1, 5 * M))
    def topup(self, account: str, amount: int) -> None:
        result = self.run(self.ledger.topup(self.id(account), amount))
        balance = self.model[account]
        balance.available += amount
        balance.credited += amount
        assert result.available == balance.available

    @rule(account=st.sampled_from(ACCOUNTS), data=st.data())
    def reserve(self, account: str, data: st.DataObject) -> None:
        wanted = data.draw(st.integers(0, 8 * M), label="wanted")
        minimum = data.draw(st.integers(0, wanted), label="minimum")
        request_id = f"{self.prefix}-r{len(self.holds)}"
        self._expire_model(account)
        balance = self.model[account]
        if balance.available < minimum:
            with pytest.raises(InsufficientCredits):
                self.run(self.ledger.reserve(AccountRef(account_id=self.id(account)), request_id, wanted, minimum, TTL))
            return
        held = self.run(self.ledger.reserve(AccountRef(account_id=self.id(account)), request_id, wanted, minimum, TTL))
        amount = min(wanted, balance.available)
        assert held.amount == amount
        balance.available -= amount
        balance.reserved += amount
        self.holds[request_id] = Hold(account, amount, self.clock.now + TTL)

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), cost=st.integers(0, 10 * M))
    def settle(self, data: st.DataObject, cost: int) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.holds)), label="request")
        hold = self.holds[request_id]
        result = self.run(self.ledger.settle(request_id, cost))
        balance = self.model[hold.account]
        if hold.status in ("settled", "released"):
            assert result.already and result.charged == hold.charged
            return
        if hold.status == "held":
            charged = min(cost, hold.amount)
            balance.reserved -= hold.amount
            balance.available += hold.amount - charged
        else:  # expired: charged from what is available now
            charged = min(cost, balance.available)
            balance.available -= charged
            assert result.late
        balance.spent += charged
        hold.status, hold.charged = "settled", charged
        assert (result.charged, result.already) == (charged, False)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.holds)), label="request")
        hold = self.holds[request_id]
        result = self.run(self.ledger.release(request_id))
        if hold.status in ("settled", "released"):
            assert result.already
            return
        if hold.status == "held":
            balance = self.model[hold.account]
            balance.reserved -= hold.amount
            balance.available += hold.amount
        hold.status = "released"
        assert result.charged == 0 and not result.already

    @rule(seconds=st.sampled_from([0.5, 3.0, 9.0, 12.0]))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(account=st.none() | st.sampled_from(ACCOUNTS))
    def sweep(self, account: str | None) -> None:
        freed = self.run(self.ledger.expire(None if account is None else self.id(account)))
        if account is None:
            # Other machines' accounts share the PostgreSQL schema but never expire here:
            # their clocks are their own, and their holds are released by their teardown.
            assert freed >= self._expire_model(None)
        else:
            assert freed == self._expire_model(account)

    @invariant()
    def ledger_matches_the_model(self) -> None:
        for name, balance in self.model.items():
            account = self.run(self.ledger.account(self.id(name)))
            assert account is not None
            assert min(account.available, account.reserved, account.spent) >= 0
            assert (account.available, account.reserved, account.spent) == (
                balance.available, balance.reserved, balance.spent,
            )
            assert account.available + account.reserved + account.spent == balance.credited
            assert account.reserved == sum(h.amount for h in self.holds.values() if h.account == name and h.status == "held")


class SQLiteLedgerMachine(LedgerMachine):
    def make_ledger(self, clock: Clock) -> Ledger:
        self.directory = tempfile.mkdtemp(prefix="payments-stateful-")
        return SQLiteLedger(f"{self.directory}/ledger.sqlite3", clock=clock)

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self.directory, ignore_errors=True)


class PostgresLedgerMachine(LedgerMachine):
    def make_ledger(self, clock: Clock) -> Ledger:
        return PostgresLedger(PAYMENTS_PG_DSN, schema=PG_SCHEMA, pool_size=2, clock=clock)


_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "stateful_step_count": 30}

TestSQLiteLedgerModel = SQLiteLedgerMachine.TestCase
TestSQLiteLedgerModel.settings = settings(max_examples=60, **_SETTINGS)
TestPostgresLedgerModel = PostgresLedgerMachine.TestCase
TestPostgresLedgerModel.settings = settings(max_examples=30, **_SETTINGS)

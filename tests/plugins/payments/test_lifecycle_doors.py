"""Payments behind every door: whatever way a request came in and however it ended, its
reservation is settled or released (none stays held), and the answers of ``/v1/completions``,
``@http`` endpoints and plugin routes carry ``X-Robutler-Cost`` and ``x-request-id`` as chat
answers do.

The doors and paths are those of ``tests/kernel/test_lifecycle_doors.py`` (which says which
combinations do not apply, and why), here with the real ``auth`` plugin (an API key names
the account that pays) and ``payments`` on SQLite and PostgreSQL. The test skill that fails
runs after ``payments`` (priority 50), so every refusal and crash comes after credits were
reserved; two more paths are refused before that: no credentials (401 from ``auth``) and a
too small ``X-Authorized-Amount`` (402 from ``payments``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
import pytest

import robutler_plugin_auth as auth
import robutler_plugin_payments as payments
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, make_kernel
from robutler_plugin_payments import LedgerConfig, make_ledger
from robutler_plugin_payments.ledger.base import RELEASED, SETTLED
from robutler_plugin_payments.money import format_credits
from tests.kernel.test_lifecycle_doors import (
    ANSWERED,
    DOORS,
    EVERY_DOOR,
    LEAVING,
    MID_STREAM,
    POLL,
    ROUTES,
    STREAMS,
    TIGHT,
    Fault,
    Recorder,
    ask,
    assert_ran_once,
    cases,
    leave,
    request_id_of,
    sse_events,
)

from .conftest import drop_schema
from .support import PAYMENTS_PG_DSN, micro

KEY = "sk-alice-lifecycle-0123456789"
CLOSED = (SETTLED, RELEASED)
ALICE = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ledger_settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One ledger per backend for the module, with alice's account in it."""
    if request.param == "sqlite":
        settings: dict[str, Any] = {"backend": "sqlite", "path": str(tmp_path_factory.mktemp("ledger") / "pay.sqlite3")}
    else:
        settings = {"backend": "postgres", "dsn": PAYMENTS_PG_DSN, "schema": f"pay_doors_{uuid.uuid4().hex[:12]}"}

    async def create() -> None:
        ledger = make_ledger(msgspec.convert(settings, LedgerConfig))
        await ledger.open()
        try:
            await ledger.create_account("alice", micro(1000))
        finally:
            await ledger.close()

    asyncio.run(create())
    yield settings
    if request.param == "postgres":
        drop_schema(settings["schema"])


def _serve(settings: dict[str, Any], **server: Any) -> Iterator[str]:
    skills = {
        "auth": {"api_keys": [{"key": KEY, "user_id": "alice"}]},
        "payments": {**settings, "request_fee": "0.01", "models": {"scripted/*": {"prompt": 1, "completion": 2}}},
        "recorder": None,
        "fault": None,
        "scripted": {"chunk_delay": 0.02},
    }
    kernel = make_kernel({"bot": {"model": "scripted/echo", "skills": skills}},
                         plugins=[scripted, auth, payments, Recorder, Fault, ROUTES],
                         server={"metrics_port": None, **server})
    with LiveServer(kernel) as live:
        yield live.url


@pytest.fixture(scope="module")
def normal(ledger_settings: dict[str, Any]) -> Iterator[str]:
    yield from _serve(ledger_settings)


@pytest.fixture(scope="module")
def tight(ledger_settings: dict[str, Any]) -> Iterator[str]:
    yield from _serve(ledger_settings, request_timeout=TIGHT)


async def _nothing_held(settings: dict[str, Any], request_id: str | None, *, wait: bool) -> tuple[str | None, int]:
    """The request's reservation status (``None``: it reserved nothing) and alice's
    reserved credits, read from the ledger; with ``wait``, polled until the reservation is
    closed and nothing is held."""
    ledger = make_ledger(msgspec.convert(settings, LedgerConfig))
    await ledger.open()
    try:
        deadline = time.monotonic() + POLL
        while True:
            held = None if request_id is None else await ledger.reservation(request_id)
            account = await ledger.account("alice")
            assert account is not None
            status = None if held is None else held.status
            if not wait or (status in CLOSED and account.reserved == 0) or time.monotonic() > deadline:
                return status, account.reserved
            await asyncio.sleep(0.02)
    finally:
        await ledger.close()


def _check_released(settings: dict[str, Any], request_id: str | None, *, reserved: bool, wait: bool = False) -> None:
    status, on_hold = asyncio.run(_nothing_held(settings, request_id, wait=wait))
    assert on_hold == 0, f"alice still has {on_hold} micro-credits on hold (this request: {status})"
    if reserved:
        assert status in CLOSED, status
    else:
        assert status is None


@pytest.mark.parametrize(("door", "path"), cases(EVERY_DOOR) + cases(MID_STREAM, STREAMS))
def test_every_answered_path_leaves_nothing_held(
    door: str, path: str, ledger_settings: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    server, _, _, status, error, _ = ANSWERED[path]
    response, marker, _ = ask(request.getfixturevalue(server), door, path, ALICE)
    assert response.status_code == status, response.text
    if door in STREAMS and status == 200:
        assert any("error" in e for e in sse_events(response.text)) == (error is not None)
    assert_ran_once(marker, error)
    # Settled before the answer (or the error event) left: no need to wait.
    _check_released(ledger_settings, request_id_of(marker), reserved=True)


@pytest.mark.parametrize(
    ("door", "path"), cases(("disconnect", "disconnect-in-finalize")) + cases(("disconnect-mid-stream",), STREAMS)
)
def test_a_client_that_leaves_leaves_nothing_held(door: str, path: str, ledger_settings: dict[str, Any],
                                                   normal: str) -> None:
    marker = leave(normal, door, path, ALICE)
    assert_ran_once(marker, LEAVING[path][3], wait=True)
    _check_released(ledger_settings, request_id_of(marker), reserved=True, wait=True)


@pytest.mark.parametrize(
    ("headers", "status"), [({}, 401), ({**ALICE, "X-Authorized-Amount": "0.001"}, 402)], ids=["anonymous", "too-little"]
)
@pytest.mark.parametrize("door", list(DOORS))
def test_refused_before_reserving_holds_nothing(
    door: str, headers: dict[str, str], status: int, ledger_settings: dict[str, Any], normal: str
) -> None:
    response, marker, _ = ask(normal, door, "success", headers)
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"] == request_id_of(marker)
    assert_ran_once(marker, "Unauthorized" if status == 401 else "PaymentRequired")
    _check_released(ledger_settings, request_id_of(marker), reserved=False)


@pytest.mark.parametrize("door", list(DOORS))
def test_cost_and_request_id_headers_on_every_door(door: str, ledger_settings: dict[str, Any], normal: str) -> None:
    response, marker, _ = ask(normal, door, "success", ALICE)
    assert response.status_code == 200, response.text
    request_id = request_id_of(marker)
    assert response.headers["x-request-id"] == request_id

    async def charged() -> int:
        ledger = make_ledger(msgspec.convert(ledger_settings, LedgerConfig))
        await ledger.open()
        try:
            held = await ledger.reservation(request_id)
        finally:
            await ledger.close()
        assert held is not None and held.status == "settled"
        return held.charged

    cost = asyncio.run(charged())
    if door in STREAMS:
        # A stream's headers leave before its cost is known: the cost is in the last usage.
        assert "x-robutler-cost" not in response.headers
        final = sse_events(response.text)[-1]
        assert final["usage"]["cost"] == pytest.approx(cost / 1_000_000) and cost > 0
        return
    assert response.headers["X-Robutler-Cost"] == format_credits(cost)
    if door in ("http", "route"):
        assert response.json()["request_id"] == request_id
    else:
        assert response.json()["usage"]["cost"] == pytest.approx(cost / 1_000_000) and cost > 0



@asynccontextmanager
async def _account_locked(settings: dict[str, Any]) -> AsyncIterator[None]:
    """Hold a lock the ledger needs to reserve for alice (her account row; SQLite's write
    lock), so a reservation waits until the block ends."""
    if settings["backend"] == "sqlite":
        conn = sqlite3.connect(settings["path"], isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    pg = await asyncpg.connect(settings["dsn"], timeout=10)
    try:
        async with pg.transaction():
            await pg.execute(f'SELECT 1 FROM "{settings["schema"]}".accounts WHERE id = $1 FOR UPDATE', "alice")
            yield
    finally:
        await pg.close()


@pytest.mark.parametrize("door", list(DOORS))
async def test_a_client_that_leaves_while_credits_are_reserved_leaves_nothing_held(
    door: str, ledger_settings: dict[str, Any], normal: str
) -> None:
    async with _account_locked(ledger_settings):
        # Gone once on_connection began: payments is waiting for the ledger.
        marker = await asyncio.to_thread(leave, normal, door, "disconnect", ALICE)
        await asyncio.to_thread(assert_ran_once, marker, "CancelledError", wait=True)
        await asyncio.sleep(0.05)  # the reservation is still waiting for the lock
    status, on_hold = await _nothing_held(ledger_settings, request_id_of(marker), wait=True)
    # Made after the client left, and released as soon as it was.
    assert (status, on_hold) == ("released", 0)

"""Nothing held by the dead: a server killed (SIGKILL) with 50 paid requests in flight,
then started again on the same ledger, finds the balance exact (nothing charged twice,
nothing lost, nothing held) and wholly usable at once; SQLite and PostgreSQL.

Also the rules that decide who is dead (``ledger/base.py``): a live process's reservations
(this one's, another ledger's in it) are never released; a process of this host that is
gone is dead at once; an owner elsewhere is dead only when its heartbeat is older than
``owner_timeout``; a ledger of the previous schema gains the owner column.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from robutler_kernel.testing import ServeProcess
from robutler_plugin_payments import LedgerConfig, make_ledger
from robutler_plugin_payments.ledger import AccountRef, Ledger
from robutler_plugin_payments.ledger.base import Owner

KEY = "sk-test-alice-0123456789abcdef0123"
IN_FLIGHT = 50
MICRO = 1_000_000


def config_file(tmp_path: Path, settings: dict[str, Any]) -> Path:
    """Two agents on the scripted model paying from one ledger: ``bot`` streams slowly and
    reserves 2 credits per request (50 of them hold 100); ``whole`` needs all 100."""
    auth = {"api_keys": [{"key": KEY, "user_id": "alice"}]}
    prices = {"models": {"scripted/*": {"prompt": 0, "completion": 0}}, **settings}
    config = {
        "server": {"metrics_port": None},
        "agents": {
            "bot": {"model": "scripted/echo", "skills": {
                "auth": auth, "scripted": {"chunk_delay": 0.5},
                "payments": {**prices, "request_fee": 1, "default_reservation": 2}}},
            "whole": {"model": "scripted/echo", "skills": {
                "auth": auth, "payments": {**prices, "request_fee": 1, "min_balance": 100,
                                           "default_reservation": 100}}},
        },
    }
    path = tmp_path / "robutler.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def ledger_for(settings: dict[str, Any]) -> Ledger:
    return make_ledger(msgspec.convert(settings, LedgerConfig))


async def stream(client: httpx.AsyncClient, url: str) -> str:
    """One slow paid stream; what it got before the server died."""
    body = {"stream": True, "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p"}]}
    received = ""
    try:
        async with client.stream("POST", f"{url}/bot/chat/completions", json=body,
                                 headers={"Authorization": f"Bearer {KEY}"}) as response:
            async for text in response.aiter_text():
                received += text
    except httpx.HTTPError:
        pass
    return received


async def test_kill_9_mid_flight_then_restart_frees_everything(
    tmp_path: Path, payments_settings: dict[str, Any], payments_admin: Ledger,
) -> None:
    await payments_admin.create_account("alice", 100 * MICRO)
    config = config_file(tmp_path, payments_settings)
    server = await asyncio.to_thread(ServeProcess, config, plugins=["scripted", "auth", "payments"], cwd=tmp_path)
    try:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=IN_FLIGHT)) as client:
            tasks = [asyncio.create_task(stream(client, server.url)) for _ in range(IN_FLIGHT)]
            for _ in range(400):  # until all 50 hold their 2 credits
                account = await payments_admin.account("alice")
                assert account is not None
                if account.reserved == 100 * MICRO:
                    break
                await asyncio.sleep(0.025)
            assert account.reserved == 100 * MICRO and account.available == 0, account
            server.process.kill()  # SIGKILL: no shutdown, no settlement
            await asyncio.to_thread(server.process.wait, 10)
            received = await asyncio.gather(*tasks)
        assert all('"finish_reason":"stop"' not in r for r in received)  # all cut mid-stream
        held = await payments_admin.account("alice")
        assert held is not None and held.reserved == 100 * MICRO  # the dead still hold it
    finally:
        server.stop()

    server = await asyncio.to_thread(ServeProcess, config, plugins=["scripted", "auth", "payments"], cwd=tmp_path)
    try:
        # Released by the new server's start-up: before any request, exact to the micro-credit.
        account = await payments_admin.account("alice")
        assert account is not None
        assert (account.available, account.reserved, account.spent) == (100 * MICRO, 0, 0)
        transactions = await payments_admin.transactions("alice", limit=100)
        assert [t.kind for t in transactions] == ["topup"]  # nothing charged
        # Usable at once: a request that needs the whole balance.
        async with httpx.AsyncClient(timeout=30) as client:
            reply = await client.post(f"{server.url}/whole/chat/completions",
                                      json={"messages": [{"role": "user", "content": "all of it"}]},
                                      headers={"Authorization": f"Bearer {KEY}"})
        assert reply.status_code == 200, reply.text
    finally:
        server.stop()
    account = await payments_admin.account("alice")
    assert account is not None
    assert (account.available, account.reserved, account.spent) == (99 * MICRO, 0, 1 * MICRO)
    charges = [t for t in await payments_admin.transactions("alice", limit=100) if t.kind == "charge"]
    assert [t.amount for t in charges] == [-1 * MICRO]


async def test_a_live_owner_is_never_released(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_account("alice", 10 * MICRO)
    await payments_admin.reserve(AccountRef(account_id="alice"), "r1", 4 * MICRO, MICRO, ttl=900)
    other = ledger_for(payments_settings)  # another open ledger of this (live) process
    await other.open()
    try:
        assert await other.release_dead() == 0
    finally:
        await other.close()
    account = await payments_admin.account("alice")
    assert account is not None and account.reserved == 4 * MICRO


def _dead_pid() -> tuple[int, float]:
    """The pid and start time of a process that has exited."""
    import psutil

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, started


async def test_who_is_dead(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    me = payments_admin.owner
    now = 1_000.0
    pid, started = _dead_pid()
    gone_here = Owner("a", me.host, pid, started, heartbeat=now)
    reused_pid = Owner("b", me.host, os.getpid(), me.started - 100, heartbeat=now)
    alive_here = Owner("c", me.host, os.getpid(), me.started, heartbeat=0.0)
    fresh_elsewhere = Owner("d", "another-host", 1, 0.0, heartbeat=now - 59)
    stale_elsewhere = Owner("e", "another-host", 1, 0.0, heartbeat=now - 61)
    assert gone_here.dead(me, now, 60) and reused_pid.dead(me, now, 60)
    assert not alive_here.dead(me, now, 60)  # its heartbeat does not matter: it is alive
    assert not fresh_elsewhere.dead(me, now, 60) and stale_elsewhere.dead(me, now, 60)


async def test_a_reservation_of_a_dead_owner_elsewhere_is_released_after_owner_timeout(
    payments_settings: dict[str, Any], payments_admin: Ledger,
) -> None:
    await payments_admin.create_account("alice", 10 * MICRO)
    clock = [10_000.0]
    other = make_ledger(msgspec.convert({**payments_settings, "heartbeat_interval": 10, "owner_timeout": 60},
                                        LedgerConfig), clock=lambda: clock[0])
    other.owner = Owner("elsewhere", "another-host", 1, 0.0)  # a replica on another machine
    await other._beat(other.owner, clock[0])
    await other.reserve(AccountRef(account_id="alice"), "r-elsewhere", 3 * MICRO, MICRO, ttl=900)
    judge = make_ledger(msgspec.convert(payments_settings, LedgerConfig), clock=lambda: clock[0])
    try:
        clock[0] += 59
        assert await judge.release_dead() == 0  # its heartbeat is fresh enough
        clock[0] += 2
        assert await judge.release_dead() == 3 * MICRO
        account = await payments_admin.account("alice")
        assert account is not None and (account.available, account.reserved) == (10 * MICRO, 0)
        # A late settlement (the replica was only frozen) still charges, once.
        settled = await other.settle("r-elsewhere", MICRO)
        assert settled.late and settled.charged == MICRO
        assert (await other.settle("r-elsewhere", MICRO)).already
    finally:
        await judge.close()
        await other.close()
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (9 * MICRO, 0, MICRO)


async def test_the_402_says_how_much_is_held_and_until_when(payments_admin: Ledger) -> None:
    from robutler_plugin_payments.ledger import InsufficientCredits

    await payments_admin.create_account("alice", 2 * MICRO)
    held = await payments_admin.reserve(AccountRef(account_id="alice"), "r1", 2 * MICRO, MICRO, ttl=120)
    with pytest.raises(InsufficientCredits) as caught:
        await payments_admin.reserve(AccountRef(account_id="alice"), "r2", MICRO, MICRO, ttl=120)
    assert caught.value.reserved == 2 * MICRO and caught.value.holds == 1
    assert caught.value.held_until == pytest.approx(held.expires_at)


def test_a_version_1_sqlite_ledger_gains_the_owner_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE accounts (id TEXT PRIMARY KEY, kind TEXT NOT NULL, available INTEGER NOT NULL,
            reserved INTEGER NOT NULL DEFAULT 0, spent INTEGER NOT NULL DEFAULT 0, token_hash TEXT UNIQUE,
            owner TEXT, created_at REAL NOT NULL);
        CREATE TABLE reservations (request_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, amount INTEGER NOT NULL,
            status TEXT NOT NULL, charged INTEGER NOT NULL DEFAULT 0, agent TEXT, created_at REAL NOT NULL,
            expires_at REAL NOT NULL, closed_at REAL);
        INSERT INTO ledger_meta VALUES ('schema_version', '1');
        INSERT INTO accounts (id, kind, available, reserved, created_at) VALUES ('alice', 'user', 5, 2, 0);
        INSERT INTO reservations (request_id, account_id, amount, status, created_at, expires_at)
            VALUES ('old', 'alice', 2, 'held', 0, 9e99);
    """)
    conn.commit()
    conn.close()

    async def body() -> None:
        ledger = ledger_for({"backend": "sqlite", "path": str(path)})
        await ledger.open()
        try:
            # An owner-less hold (an older server's) is left to its TTL, not taken for dead.
            reservation = await ledger.reservation("old")
            assert reservation is not None and reservation.status == "held"
            await ledger.reserve(AccountRef(account_id="alice"), "new", 3, 1, ttl=60)
        finally:
            await ledger.close()

    asyncio.run(body())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM ledger_meta WHERE key = 'schema_version'").fetchone() == ("2",)
    rows = dict(conn.execute("SELECT request_id, owner IS NOT NULL FROM reservations").fetchall())
    # The new hold had an owner; that owner closed, releasing it.
    assert rows == {"old": 0, "new": 1}
    assert conn.execute("SELECT status FROM reservations WHERE request_id = 'new'").fetchone() == ("expired",)
    conn.close()


async def test_a_version_1_postgres_ledger_gains_the_owner_column(payments_pg_schema: str) -> None:
    import asyncpg

    from .support import PAYMENTS_PG_DSN

    settings = {"backend": "postgres", "dsn": PAYMENTS_PG_DSN, "schema": payments_pg_schema}
    ledger = ledger_for(settings)
    await ledger.open()
    await ledger.close()
    conn = await asyncpg.connect(PAYMENTS_PG_DSN)
    try:  # back to version 1: no owners, no owner column
        s = f'"{payments_pg_schema}"'
        await conn.execute(f"DROP TABLE {s}.ledger_owners; ALTER TABLE {s}.reservations DROP COLUMN owner; "
                           f"UPDATE {s}.ledger_meta SET value = '1' WHERE key = 'schema_version'")
    finally:
        await conn.close()
    ledger = ledger_for(settings)
    await ledger.open()
    try:
        await ledger.create_account("alice", 5)
        held = await ledger.reserve(AccountRef(account_id="alice"), "r", 3, 1, ttl=60)
        assert held.amount == 3
    finally:
        await ledger.close()
    conn = await asyncpg.connect(PAYMENTS_PG_DSN)
    try:
        assert await conn.fetchval(f"SELECT value FROM {s}.ledger_meta WHERE key = 'schema_version'") == "2"
        assert await conn.fetchval(f"SELECT owner IS NOT NULL FROM {s}.reservations WHERE request_id = 'r'")
    finally:
        await conn.close()

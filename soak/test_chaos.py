"""Things dying under load: Redis and PostgreSQL stopped and restarted, the server killed
with ``kill -9``, clients that hang up at random points.

Redis and PostgreSQL are the suite's own instances on free ports (``harness``), never the
system services. After each scenario the payments ledger must balance: every credit
topped up is available, reserved or spent, and reserved credits are exactly those of
``held`` reservations.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from robutler_kernel.testing import FakeOpenAI

from . import ledger as L
from .harness import (
    ClientLoad,
    FakeUpstream,
    PostgresInstance,
    RedisInstance,
    Row,
    Summary,
    load_row,
    openai_skill,
    serve,
    server_settings,
)

AUTH = {"authorization": f"Bearer {L.KEY}"}


def _chat(stream: bool = False, words: int = 3) -> dict[str, Any]:
    return {"model": "agent", "stream": stream,
            "messages": [{"role": "user", "content": " ".join(f"w{n}" for n in range(words))}]}


def _outage_checks(outcomes: list[Any], down: float, up: float, recover: float, allowed: set[int]) -> list[str]:
    """Failures only while down (plus ``recover`` seconds), each a quick documented status."""
    problems = []
    for o in outcomes:
        if o.error is None:
            continue
        if not (down - 1 <= o.at <= up + recover):
            problems.append(f"at {o.at:.1f} s (outside the outage {down:.1f}-{up:.1f} s): {o.error[:200]}")
        elif o.status not in allowed:
            problems.append(f"at {o.at:.1f} s: status {o.status}, not one of {sorted(allowed)}: {o.error[:200]}")
        elif o.seconds > 15:
            problems.append(f"at {o.at:.1f} s: an error after {o.seconds:.1f} s (should fail fast)")
    if not any(o.error for o in outcomes if down <= o.at <= up):
        problems.append("no request failed while the backend was down: was it used at all?")
    return problems


def _outage_row(scenario: str, outcomes: list[Any], problems: list[str], note: str) -> Row:
    """A row where the documented quick 503s of the outage count as answered right."""
    row = load_row(scenario, outcomes)
    expected = row.errors - len(problems)
    row.ok, row.errors = row.requests - len(problems), len(problems)
    row.note = f"{note}; {expected} quick 503s while it was down, as documented"
    row.error_sample = problems[0] if problems else None
    return row


def test_redis_stopped_and_restarted(redis_instance: RedisInstance, fake_upstream: FakeUpstream, workdir: Path,
                                     summary: Summary, soak_options: dict[str, Any]) -> None:
    """Short-term memory on Redis: while Redis is down requests get a quick 503, after it is
    back they succeed again, and the server never goes down."""
    config = {"server": server_settings(), "agents": {"agent": {
        "model": "openai/fake-model",
        "skills": {"openai": openai_skill(fake_upstream.base_url),
                   "short_term_memory": {"backend": "redis", "redis_url": redis_instance.url, "timeout_seconds": 1.0,
                                         "key_prefix": f"soak:{uuid.uuid4().hex[:6]}:"}}}}}
    phase = 10 * soak_options["minutes"]
    with serve(workdir, config, name="redis.yaml") as process:
        load = ClientLoad(process.url + "/v1/chat/completions", lambda n: _chat(stream=n % 2 == 1),
                          headers=lambda n: {"x-conversation-id": f"conv-{n % 40}"}, clients=4)
        time.sleep(phase)
        down = load.now()
        redis_instance.stop()
        time.sleep(4)
        redis_instance.start()
        up = load.now()
        time.sleep(phase)
        outcomes = load.stop()
        alive = process.process.poll() is None
    problems = _outage_checks(outcomes, down, up, recover=3, allowed={503})
    summary.add(_outage_row("Redis (short-term memory) killed 4 s, restarted", outcomes, problems,
                            f"Redis down {down:.1f}-{up:.1f} s"))
    assert alive, "the server died"
    assert not problems, problems[:10]


def test_postgres_stopped_and_restarted(postgres_instance: PostgresInstance, fake_upstream: FakeUpstream,
                                        workdir: Path, summary: Summary, soak_options: dict[str, Any]) -> None:
    """The payments ledger on PostgreSQL: stopped (immediate shutdown) mid-load and started
    again. Meanwhile requests get a quick 503; then they succeed; the ledger balances."""
    book = {"backend": "postgres", "dsn": postgres_instance.dsn, "schema": f"soak_{uuid.uuid4().hex[:8]}",
            "timeout": 3.0}
    L.seed(book)
    config = {"server": server_settings(), "agents": {"agent": {
        "model": "openai/fake-model",
        "skills": {"openai": openai_skill(fake_upstream.base_url), "auth": L.auth_settings(),
                   "payments": L.payments_settings(book)}}}}
    phase = 10 * soak_options["minutes"]
    with serve(workdir, config, name="postgres.yaml") as process:
        load = ClientLoad(process.url + "/v1/chat/completions", lambda n: _chat(stream=n % 2 == 1),
                          headers=lambda n: AUTH, clients=4)
        time.sleep(phase)
        down = load.now()
        postgres_instance.stop(fast=True)
        time.sleep(4)
        postgres_instance.start()
        up = load.now()
        time.sleep(phase)
        outcomes = load.stop()
        alive = process.process.poll() is None
    totals = L.totals(book)
    problems = _outage_checks(outcomes, down, up, recover=5, allowed={503})
    summary.add(_outage_row("PostgreSQL (payments ledger) stopped 4 s, restarted", outcomes,
                            problems + totals.problems(),
                            f"PostgreSQL down {down:.1f}-{up:.1f} s; ledger after: {totals.held_count} held, "
                            f"conservation {'ok' if not totals.problems() else 'BROKEN'}"))
    assert alive, "the server died"
    assert not totals.problems(), totals.problems()
    assert not problems, problems[:10]


@pytest.fixture
def slow_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        fake.default_reply.chunk_delay = 0.1
        yield fake


def test_kill_9_mid_load(slow_fake: FakeOpenAI, workdir: Path, summary: Summary) -> None:
    """50 paid streams in flight, the server killed with SIGKILL: the ledger balances at
    once; a new server on the same ledger releases what the dead one held, so the whole
    balance is usable again at once."""
    book = {"backend": "sqlite", "path": str(workdir / f"kill9-{uuid.uuid4().hex[:6]}.sqlite3")}
    L.seed(book)
    config = {"server": server_settings(), "agents": {"agent": {
        "model": "openai/fake-model",
        "skills": {"openai": openai_skill(slow_fake.base_url + "/v1"), "auth": L.auth_settings(),
                   "payments": L.payments_settings(book)}}}}
    process = serve(workdir, config, name="kill9.yaml")
    url = process.url + "/v1/chat/completions"

    async def fifty() -> list[str]:
        async with httpx.AsyncClient(timeout=30, headers=AUTH) as client:
            async def one() -> str:
                try:
                    async with client.stream("POST", url, json=_chat(stream=True, words=60)) as response:
                        async for _ in response.aiter_bytes():
                            pass
                    return "finished"
                except httpx.HTTPError as exc:
                    return type(exc).__name__
            tasks = [asyncio.ensure_future(one()) for _ in range(50)]
            await asyncio.sleep(1.5)
            process.process.send_signal(signal.SIGKILL)
            return list(await asyncio.gather(*tasks))

    started = time.monotonic()
    results = asyncio.run(fifty())
    process.process.wait(10)
    process.stop()
    dead = L.totals(book)
    with serve(workdir, config, name="kill9.yaml") as again:
        restarted = L.totals(book)
        answers = [httpx.post(again.url + "/v1/chat/completions", json=_chat(), headers=AUTH, timeout=30)
                   for _ in range(10)]
    final = L.totals(book)
    ok = sum(r.status_code == 200 for r in answers)
    finished = results.count("finished")
    problems = [*dead.problems(), *final.problems()]
    if finished == 50:
        problems.append("the kill came too late: every stream had finished")
    if ok != 10:
        problems.append(f"{10 - ok} of 10 requests after the restart failed: "
                        + "; ".join(r.text[:200] for r in answers if r.status_code != 200)[:600])
    if restarted.held_count:
        problems.append(f"the restarted server left {restarted.held_count} reservations of the killed one held "
                        f"({restarted.held} micro-credits)")
    summary.add(Row("kill -9 with 50 paid streams in flight, restart", 60, 60 - len(problems), len(problems),
                    seconds=round(time.monotonic() - started, 1), error_sample=problems[0] if problems else None,
                    note=(f"{50 - finished} streams cut by the kill (expected), then 10 requests after the restart; "
                          f"at the kill {dead.held_count} reservations held ({dead.held} micro-credits), after the "
                          f"restart {restarted.held_count}; conservation "
                          f"{'ok' if not (dead.problems() or final.problems()) else 'BROKEN'}")))
    assert not problems, problems


def test_client_disconnects_at_random_points(slow_fake: FakeOpenAI, workdir: Path, summary: Summary,
                                             soak_options: dict[str, Any]) -> None:
    """Clients that hang up at random points (mid-request, before the answer, mid-stream,
    with a reset): the server stays up, cancels the upstream calls, holds no reservation
    afterwards, the ledger balances, and its connections to the upstream drain."""
    book = {"backend": "sqlite", "path": str(workdir / f"disconnect-{uuid.uuid4().hex[:6]}.sqlite3")}
    L.seed(book)
    config = {"server": server_settings(), "agents": {"agent": {
        "model": "openai/fake-model",
        "skills": {"openai": openai_skill(slow_fake.base_url + "/v1"), "auth": L.auth_settings(),
                   "payments": L.payments_settings(book)}}}}
    count = int(300 * soak_options["minutes"])
    rng = random.Random(14)
    with serve(workdir, config, name="disconnect.yaml") as process:
        port = int(process.url.rsplit(":", 1)[1])
        kinds = asyncio.run(_hang_ups(port, count, rng))
        time.sleep(3)
        alive = process.process.poll() is None
        after = httpx.post(process.url + "/v1/chat/completions", json=_chat(stream=True), headers=AUTH, timeout=30)
        time.sleep(1)
    totals = L.totals(book)
    summary.add(Row(f"{count} clients hanging up at random points", count, count, 0,
                    note=", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
                         + f"; upstream answers cancelled: {slow_fake.cancelled}; held after: {totals.held_count}"))
    assert alive
    assert after.status_code == 200 and after.text.rstrip().endswith("data: [DONE]"), after.text[-300:]
    assert not totals.problems(), totals.problems()
    assert totals.held_count == 0, f"{totals.held_count} reservations still held after every client left"
    assert slow_fake.cancelled > 0, "no upstream answer was cancelled when its client left"


async def _hang_ups(port: int, count: int, rng: random.Random) -> dict[str, int]:
    body = b'{"model": "agent", "stream": %s, "messages": [{"role": "user", "content": "%s"}]}'
    kinds: dict[str, int] = {}

    async def one(n: int) -> None:
        stream = rng.random() < 0.7
        payload = body % (b"true" if stream else b"false", b" ".join(b"w%d" % i for i in range(30)))
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"authorization: Bearer " + L.KEY.encode() + b"\r\ncontent-length: %d\r\n\r\n" % len(payload))
        kind = rng.choice(["mid-request", "before-answer", "mid-stream", "mid-stream-reset", "after-headers"])
        kinds[kind] = kinds.get(kind, 0) + 1
        await asyncio.sleep(rng.random() * 3)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if kind == "mid-request":
                writer.write(head + payload[: rng.randrange(len(payload))])
                await writer.drain()
                await asyncio.sleep(rng.random() * 0.5)
                return
            writer.write(head + payload)
            await writer.drain()
            if kind == "before-answer":
                await asyncio.sleep(rng.random() * 0.3)
                return
            wanted = rng.randrange(1, 2000) if kind.startswith("mid-stream") else 1
            got = 0
            while got < wanted:
                data = await asyncio.wait_for(reader.read(4096), 30)
                if not data:
                    break
                got += len(data)
            if kind == "mid-stream-reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        finally:
            writer.close()

    await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)
    return kinds

"""The algorithm against a model: a leaky bucket that drains one second per second, written
independently of gcra.py; both backends must decide exactly as it does."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robutler_plugin_ratelimit import Limit, MemoryLimiter, RedisLimiter, format_duration
from robutler_plugin_ratelimit.gcra import remaining

from .helpers import REDIS_URL, Clock, unique_prefix


class Bucket:
    """The model: ``level`` seconds of debt, draining at one second per second. A request
    costs one ``interval`` and fits while the level stays within the window; tokens are
    charged after the fact and refuse the next request while the level is over."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.interval = window / limit
        self.window = window
        self.level = 0.0
        self.at = 0.0

    def drain(self, now: float) -> None:
        self.level = max(0.0, self.level - (now - self.at))
        self.at = now

    def request(self, now: float) -> bool:
        self.drain(now)
        if self.level + self.interval > self.window + 1e-9:
            return False
        self.level += self.interval
        return True

    def over(self, now: float) -> bool:
        self.drain(now)
        return self.level > self.window + 1e-9

    def charge(self, now: float, units: int) -> None:
        self.drain(now)
        self.level += units * self.interval


#: One step: seconds to wait, then a request (None) or n tokens charged.
steps = st.lists(st.tuples(st.sampled_from([0.0, 0.001, 0.25, 0.5, 1.0, 3.0, 7.5, 30.0]),
                           st.one_of(st.none(), st.integers(1, 40))), max_size=60)


async def _replay(limiter: Any, clock: Clock, limit: int, token_limit: int, script: list[Any]) -> list[bool]:
    """The decisions of ``limiter`` over ``script``, checked against the model as it goes."""
    requests, tokens = Limit("r", limit), Limit("t", token_limit)
    model_requests, model_tokens = Bucket(limit), Bucket(token_limit)
    decisions = []
    start = clock.now
    for wait, units in script:
        clock.advance(wait)
        t = clock.now - start
        if units is None:
            _, states = await limiter.acquire([(requests, 1), (tokens, 0)])
            allowed = all(s.allowed for s in states)
            over = model_tokens.over(t)
            # All or nothing: a request refused for tokens spends no request.
            expected = False if over else model_requests.request(t)
            assert allowed == expected, (t, states)
            if not allowed:
                wait_for = max(s.retry_after for s in states)
                assert wait_for > 0
            decisions.append(allowed)
        else:
            await limiter.charge([(tokens, units)])
            model_tokens.charge(t, units)
    return decisions


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 12), token_limit=st.integers(5, 100), script=steps)
def test_memory_backend_decides_as_the_model(limit: int, token_limit: int, script: list[Any]) -> None:
    clock = Clock()
    asyncio.run(_replay(MemoryLimiter(clock), clock, limit, token_limit, script))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(1, 12), token_limit=st.integers(5, 100), script=steps)
def test_redis_backend_decides_as_the_model(limit: int, token_limit: int, script: list[Any]) -> None:
    async def main() -> None:
        clock = Clock()
        limiter = RedisLimiter(REDIS_URL, prefix=unique_prefix(), timeout=2, clock=clock)
        await limiter.start()
        try:
            await _replay(limiter, clock, limit, token_limit, script)
        finally:
            keys = [k async for k in limiter.client.scan_iter(match=limiter.prefix + "*")]
            if keys:
                await limiter.client.delete(*keys)
            await limiter.close()

    asyncio.run(main())


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 20), gaps=st.lists(st.floats(0, 20), min_size=1, max_size=80))
def test_never_more_than_a_burst_plus_the_rate(limit: int, gaps: list[float]) -> None:
    """Over any stretch of time t, at most limit + t / interval requests get through."""
    clock = Clock(0.0)
    bucket = Limit("k", limit)

    async def main() -> list[float]:
        limiter = MemoryLimiter(clock)
        times = []
        for gap in gaps:
            clock.advance(gap)
            _, (state,) = await limiter.acquire([(bucket, 1)])
            if state.allowed:
                times.append(clock.now)
        return times

    times = asyncio.run(main())
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= limit + (times[j] - times[i]) / bucket.interval + 1e-6


async def test_a_burst_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    bucket = Limit("k", 6)  # a burst of 6, then one every 10 s
    results = [(await limiter.acquire([(bucket, 1)]))[1][0] for _ in range(7)]
    assert [s.allowed for s in results] == [True] * 6 + [False]
    assert results[-1].retry_after == pytest.approx(10.0)
    clock.advance(9.9)
    assert not (await limiter.acquire([(bucket, 1)]))[1][0].allowed
    clock.advance(0.1)
    now, (state,) = await limiter.acquire([(bucket, 1)])
    assert state.allowed and remaining(state.tat, now, bucket) == 0


async def test_memory_forgets_full_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    import robutler_plugin_ratelimit.memory as memory

    monkeypatch.setattr(memory, "SWEEP_EVERY", 10)
    clock = Clock()
    limiter = MemoryLimiter(clock)
    for i in range(9):
        await limiter.acquire([(Limit(f"k{i}", 60), 1)])
    clock.advance(2)
    await limiter.acquire([(Limit("last", 60), 1)])
    assert list(limiter.buckets) == ["last"]


async def test_redis_uses_the_server_clock_without_one() -> None:
    limiter = RedisLimiter(REDIS_URL, prefix=unique_prefix(), timeout=2)
    await limiter.start()
    try:
        now, (state,) = await limiter.acquire([(Limit("k", 2), 1)])
        server = await limiter.client.time()
        assert abs(now - (server[0] + server[1] / 1e6)) < 5
        assert state.allowed and math.isclose(state.tat - now, 30.0, abs_tol=1e-3)
        ttl = await limiter.client.pttl(limiter.prefix + "k")
        assert 30_000 <= ttl <= 31_000
    finally:
        await limiter.client.delete(limiter.prefix + "k")
        await limiter.close()


@pytest.mark.parametrize(("seconds", "text"), [(0, "0ms"), (0.0201, "21ms"), (1.5, "1.5s"), (59.9991, "60s"),
                                               (360, "6m0s"), (61.2, "1m2s"), (3700, "1h1m40s")])
def test_durations_read_as_openai_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text

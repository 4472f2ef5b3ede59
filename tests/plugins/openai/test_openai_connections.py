"""max_connections: the upstream pool is the documented setting, on every transport, and a
full pool fails after connect_timeout, not after the whole timeout."""

from __future__ import annotations

import asyncio
import time

import pytest
from openai_helpers import call_and_ctx, run, started

from robutler_kernel.testing import FakeOpenAI
from robutler_specs import RequestError
from robutler_specs.provider import DEFAULT_MAX_CONNECTIONS


@pytest.fixture(params=["aiohttp", "httpx"])
def http_client(request: pytest.FixtureRequest, openai_transport: str) -> str:
    """The SDK transport's HTTP library. The direct transport has one (aiohttp) whatever
    ``http_client`` says: its cases check that the setting does not change that."""
    return str(request.param)


async def _peak(fake: FakeOpenAI, calls: int, limit: int, http_client: str) -> int:
    async with started(fake, max_connections=limit, http_client=http_client) as skill:
        async def one() -> None:
            ctx, call = call_and_ctx()
            await skill.llm_complete(ctx, call)

        tasks = [asyncio.create_task(one()) for _ in range(calls)]
        peak = 0
        while not all(t.done() for t in tasks):
            peak = max(peak, fake.open_connections)
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
        return peak


def test_the_pool_holds_at_most_max_connections(fake: FakeOpenAI, http_client: str) -> None:
    fake.add_reply("slow", delay=0.3, times=9)
    peak = run(_peak(fake, 9, 3, http_client))
    assert peak == 3
    assert len(fake.requests) == 9


def test_a_full_pool_fails_after_connect_timeout(fake: FakeOpenAI, http_client: str, openai_transport: str) -> None:
    fake.add_reply("held", delay=3.0)

    async def main() -> tuple[float, RequestError]:
        async with started(fake, max_connections=1, connect_timeout=0.3, timeout=10, http_client=http_client) as skill:
            ctx, call = call_and_ctx()
            held = asyncio.create_task(skill.llm_complete(ctx, call))
            # The held call has reached the upstream (a lingering connection of an earlier
            # test counts as open, so wait for the request itself): it holds the one connection.
            assert await fake.wait_requests_async()
            started_at = time.monotonic()
            with pytest.raises(RequestError) as caught:
                await skill.llm_complete(*call_and_ctx())
            elapsed = time.monotonic() - started_at
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
            return elapsed, caught.value

    elapsed, error = run(main())
    assert elapsed < 2.0
    assert error.retryable
    assert error.status in (502, 503, 504)
    assert "did not answer" not in error.message  # a full pool is never a slow model
    if http_client == "httpx" and openai_transport == "sdk":  # httpx says which limit it hit
        assert "all 1 connections" in error.message and "max_connections" in error.message


def test_default_is_sized_for_ten_thousand_streams() -> None:
    from robutler_plugin_openai import OpenAIConfig

    assert OpenAIConfig().max_connections == DEFAULT_MAX_CONNECTIONS >= 10_000
    with pytest.raises(ValueError, match="max_connections"):
        OpenAIConfig(max_connections=0)

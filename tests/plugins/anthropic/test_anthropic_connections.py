"""max_connections: the upstream pool is the documented setting on both HTTP libraries, and a
full pool fails after connect_timeout, not after the whole timeout."""

from __future__ import annotations

import asyncio
import time

import pytest
from anthropic_helpers import call_and_ctx, started

from robutler_kernel.testing import FakeAnthropic
from robutler_plugin_anthropic import AnthropicConfig
from robutler_specs import RequestError
from robutler_specs.provider import DEFAULT_MAX_CONNECTIONS


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_the_pool_holds_at_most_max_connections(fake: FakeAnthropic, http_client: str) -> None:
    fake.add_reply("slow", delay=0.3, times=9)

    async def main() -> int:
        async with started(fake, max_connections=3, http_client=http_client) as skill:
            tasks = [asyncio.create_task(skill.llm_complete(*call_and_ctx())) for _ in range(9)]
            peak = 0
            while not all(t.done() for t in tasks):
                peak = max(peak, fake.open_connections)
                await asyncio.sleep(0.002)
            await asyncio.gather(*tasks)
            return peak

    assert asyncio.run(main()) == 3
    assert len(fake.requests) == 9


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_full_pool_fails_after_connect_timeout(fake: FakeAnthropic, http_client: str) -> None:
    fake.add_reply("held", delay=3.0)

    async def main() -> tuple[float, RequestError]:
        async with started(fake, max_connections=1, connect_timeout=0.3, timeout=10, http_client=http_client) as skill:
            held = asyncio.create_task(skill.llm_complete(*call_and_ctx()))
            # The held call has reached the upstream (a lingering connection of an earlier
            # test counts as open, so wait for the request itself): it holds the one connection.
            assert await fake.wait_requests_async()
            begun = time.monotonic()
            with pytest.raises(RequestError) as caught:
                await skill.llm_complete(*call_and_ctx())
            elapsed = time.monotonic() - begun
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
            return elapsed, caught.value

    elapsed, error = asyncio.run(main())
    assert elapsed < 2.0 and error.retryable
    assert "did not answer" not in error.message


def test_default_is_sized_for_ten_thousand_streams() -> None:
    assert AnthropicConfig().max_connections == DEFAULT_MAX_CONNECTIONS >= 10_000

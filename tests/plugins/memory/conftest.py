"""Fixtures of the memory plugin's tests (all prefixed ``stm_``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from .helpers import REDIS_URL, unique_prefix


@pytest.fixture
async def stm_redis() -> AsyncIterator[aioredis.Redis]:
    """A client of the local Redis (the same one the plugin uses in these tests)."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def stm_prefix(stm_redis: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test only; every key under it is deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    keys = [key async for key in stm_redis.scan_iter(match=prefix + "*", count=500)]
    if keys:
        await stm_redis.delete(*keys)

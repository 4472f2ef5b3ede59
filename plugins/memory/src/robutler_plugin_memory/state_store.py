"""The kernel's shared key-value store on Redis (``robutler_state_store``).

With ``plugins: {memory: {redis_url: redis://...}}`` in the config, the kernel's
``state_store`` (stored responses, a turn's server-side tool calls) lives in Redis, so every
replica finds what another stored. Keys are prefixed (``key_prefix``, default
``robutler:state:``); each value is one Redis string with its TTL (``SET ... PX``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from robutler_specs import ServiceUnavailable


class StateSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``plugins: {memory: {...}}``: where the kernel's shared store lives.

    :ivar redis_url: the Redis to keep it in; unset: the kernel keeps its own in-process store.
    :ivar key_prefix: the prefix of every key.
    """

    redis_url: str | None = None
    key_prefix: str = "robutler:state:"


class RedisStateStore:
    """Bytes by key with a TTL, in Redis.

    :param client: a ``redis.asyncio`` client.
    :param prefix: prepended to every key.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None``."""
        try:
            value: bytes | None = await self.client.get(self.prefix + key)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (at least a millisecond)."""
        try:
            await self.client.set(self.prefix + key, value, px=max(int(ttl * 1000), 1))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        try:
            return bool(await self.client.delete(self.prefix + key))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        """Close the connections."""
        await self.client.aclose()


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"the shared state store (Redis) is unavailable: {type(exc).__name__}: {exc}")


def open_store(settings: StateSettings) -> RedisStateStore | None:
    """A store on ``settings.redis_url``, or ``None`` when it is unset."""
    if not settings.redis_url:
        return None
    return RedisStateStore(aioredis.from_url(settings.redis_url), settings.key_prefix)


__all__ = ["RedisStateStore", "StateSettings", "open_store"]

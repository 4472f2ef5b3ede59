"""Robutler plugin ``ratelimit``: the ``rate_limit`` skill.

Requests and tokens per minute per caller, per agent (the skill's config) and across agents
(``plugins.ratelimit``), with GCRA buckets in-process or in Redis (shared by replicas);
429 with ``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers. Every setting and the
algorithm are documented in ``docs/plugins/ratelimit.md``.
"""

from __future__ import annotations

from typing import Any

from robutler_specs import KernelAPI, hookimpl

from .config import RateLimitConfig, RateLimitSettings
from .gcra import Limit, State, format_duration
from .memory import MemoryLimiter
from .redis_backend import RedisLimiter
from .skill import STATE_KEY, RateLimitSkill, caller_key

#: ``plugins: {ratelimit: {...}}`` (validated by ``robutler-kernel check``).
PluginSettings = RateLimitSettings

__all__ = [
    "STATE_KEY",
    "Limit",
    "MemoryLimiter",
    "RateLimitConfig",
    "RateLimitSettings",
    "RateLimitSkill",
    "RedisLimiter",
    "State",
    "caller_key",
    "format_duration",
]


@hookimpl
def robutler_skills() -> list[type[RateLimitSkill]]:
    """The rate limit skill."""
    return [RateLimitSkill]


@hookimpl
async def robutler_shutdown(kernel: KernelAPI) -> None:
    """Close the backend's connections."""
    backend: Any = kernel.state.pop(STATE_KEY, None)
    if backend is not None:
        await backend.close()

"""The ``rate_limit`` skill's settings (per agent) and the plugin's (``plugins.ratelimit``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

#: Used when neither ``redis_url`` nor ``$REDIS_URL`` is set.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

PerMinute = Annotated[int, msgspec.Meta(ge=1)] | None


class RateLimitConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``agents.<agent>.skills.rate_limit``: what one caller may use of this agent.

    :ivar requests_per_minute: requests one caller may make to this agent per minute
        (a burst of this many, then one every ``60 / n`` seconds); ``null``: no limit.
    :ivar tokens_per_minute: LLM tokens (prompt + completion) of this agent's calls one
        caller may use per minute; counted after each request, the next request is refused
        while the caller is over; ``null``: no limit.
    """

    requests_per_minute: PerMinute = None
    tokens_per_minute: PerMinute = None


class RateLimitSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``plugins.ratelimit``: where the buckets live, and the limits across agents.

    :ivar backend: ``memory`` (this process only) or ``redis`` (shared by every replica).
    :ivar redis_url: the Redis to use; ``null`` means ``$REDIS_URL``, else
        ``redis://127.0.0.1:6379/0``.
    :ivar key_prefix: prefix of every Redis key.
    :ivar timeout_seconds: how long one Redis call may take.
    :ivar fail_open: when the backend fails (Redis down), let requests through (logged)
        rather than refuse them with 503.
    :ivar requests_per_minute: requests one caller may make per minute to all the agents
        that have the ``rate_limit`` skill together; ``null``: no limit.
    :ivar tokens_per_minute: tokens likewise, over those agents together.
    :ivar anonymous_key_header: a request header that tells anonymous callers apart
        (``X-Forwarded-For``, whose first address is used, or ``X-Real-IP``), set by a
        proxy you trust; ``null``: all anonymous callers share one bucket.
    """

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None
    key_prefix: str = "robutler:rl:"
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    fail_open: bool = True
    requests_per_minute: PerMinute = None
    tokens_per_minute: PerMinute = None
    anonymous_key_header: str | None = None

    def resolved_redis_url(self, env: Mapping[str, str] | None = None) -> str:
        """``redis_url``, else ``$REDIS_URL``, else :data:`DEFAULT_REDIS_URL`."""
        env = os.environ if env is None else env
        return self.redis_url or env.get("REDIS_URL") or DEFAULT_REDIS_URL


__all__ = ["DEFAULT_REDIS_URL", "RateLimitConfig", "RateLimitSettings"]

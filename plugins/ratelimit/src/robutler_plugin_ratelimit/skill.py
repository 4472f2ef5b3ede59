"""The ``rate_limit`` skill: requests and tokens per minute per caller, per agent and global.

In ``on_connection`` (priority 8: after ``auth`` (5), which sets ``ctx.identity``, and
before ``payments`` (10), so a refused request reserves no credits) one backend call checks
and spends a request from every request bucket of the caller (this agent's, the global
one) and checks that no token bucket is over. A refusal is a 429 with ``Retry-After`` and
OpenAI's ``x-ratelimit-*`` headers; an accepted request carries the same headers. In
``finalize_connection`` the tokens of this agent's own LLM calls are charged to the token
buckets (a caller can go over by one request's tokens; the next request then waits).
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import msgspec

from robutler_specs import (
    ConfigError,
    KernelAPI,
    RateLimited,
    RequestContext,
    ServiceUnavailable,
    Skill,
    hookimpl,
)

from .config import RateLimitConfig, RateLimitSettings
from .gcra import Limit, State, format_duration, remaining, reset_after
from .memory import MemoryLimiter
from .redis_backend import RedisLimiter

log = logging.getLogger("robutler.ratelimit")

#: Where the kernel-wide backend lives (``kernel.state``).
STATE_KEY = "ratelimit.backend"
#: Where the validated ``plugins.ratelimit`` settings live (``kernel.state``).
SETTINGS_KEY = "ratelimit.settings"
#: Where a request's token buckets wait for ``finalize_connection`` (``ctx.state``).
CTX_KEY = "rate_limit"


class Bucket(NamedTuple):
    """A limit with what it limits: ``kind`` (``requests``/``tokens``), ``per_agent``
    (this agent only, or across agents)."""

    limit: Limit
    kind: str
    per_agent: bool


def settings_of(kernel: KernelAPI) -> RateLimitSettings:
    """``plugins.ratelimit``, validated.

    :raises ConfigError: a setting of the wrong type or an unknown one.
    """
    try:
        return msgspec.convert(dict(kernel.plugin_settings("ratelimit")), RateLimitSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"plugins.ratelimit: {exc}") from None


def ensure_backend(kernel: KernelAPI) -> Any:
    """The kernel-wide backend, made on first use from ``plugins.ratelimit``."""
    backend = kernel.state.get(STATE_KEY)
    if backend is None:
        settings = kernel.state[SETTINGS_KEY] = settings_of(kernel)
        if settings.backend == "redis":
            backend = RedisLimiter(settings.resolved_redis_url(), prefix=settings.key_prefix,
                                   timeout=settings.timeout_seconds)
        else:
            backend = MemoryLimiter()
        kernel.state[STATE_KEY] = backend
    return backend


def caller_key(ctx: RequestContext, header: str | None) -> str:
    """Whose buckets a request uses: the identity's user id, else the anonymous header's
    value, else one shared anonymous bucket."""
    user = ctx.identity.user_id
    if user is not None:
        return "u:" + user
    if header:
        value = ctx.headers.get(header.lower())
        if value:
            return "h:" + value.split(",", 1)[0].strip()
    return "anonymous"


class RateLimitSkill(Skill):
    """Refuses a caller over its requests or tokens per minute (429), and reports the
    budget on every answer (``x-ratelimit-*``)."""

    name = "rate_limit"
    priority = 8
    Config = RateLimitConfig
    description = "Requests and tokens per minute per caller, per agent and global (429, x-ratelimit-*)"

    config: RateLimitConfig

    @property
    def settings(self) -> RateLimitSettings:
        """``plugins.ratelimit``, validated."""
        ensure_backend(self.kernel)
        found: RateLimitSettings = self.kernel.state[SETTINGS_KEY]
        return found

    @property
    def backend(self) -> Any:
        """The kernel-wide backend (in-process or Redis)."""
        return ensure_backend(self.kernel)

    async def start(self) -> None:
        """Open the kernel-wide backend (once, whichever agent starts first).

        :raises ConfigError: ``plugins.ratelimit`` does not validate, or its ``redis_url``
            is not a Redis URL.
        """
        backend = ensure_backend(self.kernel)
        if isinstance(backend, RedisLimiter) and backend.client is None:
            try:
                await backend.start()
            except ValueError as exc:
                raise ConfigError(f"plugins.ratelimit.redis_url: {exc}") from None

    def _buckets(self, who: str) -> tuple[list[Bucket], list[Bucket]]:
        cfg, settings = self.config, self.settings
        agent = self.agent.name
        requests, tokens = [], []
        # A Redis Cluster hash tag on the caller: one script touches only its own slot.
        if cfg.requests_per_minute:
            requests.append(Bucket(Limit(f"{{{who}}}:req:a:{agent}", cfg.requests_per_minute), "requests", True))
        if settings.requests_per_minute:
            requests.append(Bucket(Limit(f"{{{who}}}:req:g", settings.requests_per_minute), "requests", False))
        if cfg.tokens_per_minute:
            tokens.append(Bucket(Limit(f"{{{who}}}:tok:a:{agent}", cfg.tokens_per_minute), "tokens", True))
        if settings.tokens_per_minute:
            tokens.append(Bucket(Limit(f"{{{who}}}:tok:g", settings.tokens_per_minute), "tokens", False))
        return requests, tokens

    def _where(self, bucket: Bucket) -> str:
        if bucket.per_agent:
            return f"agents.{self.agent.name}.skills.rate_limit.{bucket.kind}_per_minute"
        return f"plugins.ratelimit.{bucket.kind}_per_minute"

    @hookimpl
    async def on_connection(self, ctx: RequestContext) -> None:
        """Spend one request of the caller's request buckets, or refuse with 429 when one
        is empty or a token bucket is over."""
        requests, tokens = self._buckets(caller_key(ctx, self.settings.anonymous_key_header))
        if not requests and not tokens:
            return
        buckets = requests + tokens
        wanted = [(b.limit, 1 if b.kind == "requests" else 0) for b in buckets]
        try:
            now, states = await self.backend.acquire(wanted)
        except Exception as exc:
            self._backend_failed(exc)
            return
        headers = self._headers(now, requests, states[: len(requests)], "requests")
        headers.update(self._headers(now, tokens, states[len(requests):], "tokens"))
        ctx.response_headers.update(headers)
        refused = [(b, state) for b, state in zip(buckets, states, strict=True) if not state.allowed]
        if not refused:
            ctx.state[CTX_KEY] = tokens
            return
        bucket, state = max(refused, key=lambda item: item[1].retry_after)
        wait = state.retry_after
        scope = f"on agent {self.agent.name!r}" if bucket.per_agent else "across agents"
        raise RateLimited(
            f"rate limit reached for {bucket.kind}: {bucket.limit.limit} per minute per caller {scope} "
            f"({self._where(bucket)}); retry in {wait:.2f} s",
            code="rate_limit_exceeded" if bucket.kind == "requests" else "tokens_rate_limit_exceeded",
            headers={**headers, "Retry-After": str(max(1, math.ceil(wait)))},
            plugin="ratelimit",
        )

    @hookimpl
    async def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        """Charge the tokens of this agent's own LLM calls to the caller's token buckets;
        a JSON answer's ``x-ratelimit-*-tokens`` headers then show the budget after it."""
        tokens: list[Bucket] | None = ctx.state.pop(CTX_KEY, None)
        if not tokens:
            return
        used = sum(r.prompt_tokens + r.completion_tokens for r in ctx.usage if r.kind == "llm")
        if not used:
            return
        try:
            now, tats = await self.backend.charge([(b.limit, used) for b in tokens])
        except Exception as exc:
            log.warning("rate_limit: could not count %s tokens of request %s: %s", used, ctx.request_id, exc)
            return
        states = [State(True, tat, 0.0) for tat in tats]
        ctx.response_headers.update(self._headers(now, tokens, states, "tokens"))

    @staticmethod
    def _headers(now: float, buckets: list[Bucket], states: list[State], kind: str) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*-<kind>`` for the tightest of ``buckets``."""
        if not buckets:
            return {}
        left, limit, state = min(
            ((remaining(s.tat, now, b.limit), b.limit, s) for b, s in zip(buckets, states, strict=True)),
            key=lambda item: item[0],
        )
        return {
            f"x-ratelimit-limit-{kind}": str(limit.limit),
            f"x-ratelimit-remaining-{kind}": str(left),
            f"x-ratelimit-reset-{kind}": format_duration(reset_after(state.tat, now)),
        }

    def _backend_failed(self, exc: Exception) -> None:
        if self.settings.fail_open:
            log.warning("rate_limit: the backend failed (%s: %s); the request is let through "
                        "(plugins.ratelimit.fail_open)", type(exc).__name__, exc)
            return
        raise ServiceUnavailable(
            f"rate limits cannot be checked ({type(exc).__name__}: {exc}); retry shortly",
            code="rate_limit_backend_unavailable",
            headers={"Retry-After": "1"},
            plugin="ratelimit",
        ) from exc

    def health_checks(self) -> dict[str, Any]:
        """The backend's check (Redis PING), shared by every agent."""
        backend = self.backend
        if not getattr(backend, "shared", False):
            return {}
        return {"ratelimit:redis": backend.ping}

    def describe(self) -> dict[str, Any]:
        """The limits a caller may rely on."""
        settings = self.settings
        return {
            "requests_per_minute": self.config.requests_per_minute,
            "tokens_per_minute": self.config.tokens_per_minute,
            "global_requests_per_minute": settings.requests_per_minute,
            "global_tokens_per_minute": settings.tokens_per_minute,
        }


__all__ = ["CTX_KEY", "SETTINGS_KEY", "STATE_KEY", "Bucket", "RateLimitSkill", "caller_key", "ensure_backend", "settings_of"]

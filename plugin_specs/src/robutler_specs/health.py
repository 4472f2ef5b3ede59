"""Health checks: required or informative, and cached.

A skill's :meth:`~robutler_specs.Skill.health_checks` (and the ``robutler_health_checks``
hook) return named async checks; a check passes unless it raises. By default a failing
check is *required*: it makes ``/ready`` answer 503 (the load balancer takes the replica
out) and ``/health/detailed`` report ``unhealthy``. A check marked :func:`informative` is
reported (and counted in ``robutler_agent_health``) but never takes a replica out: an LLM
provider that is down for one agent should not stop the server from serving the others.

:class:`CachedCheck` runs its check at most once per ``ttl`` seconds (a provider's
``GET /models`` costs a round trip, and probes come every few seconds from every replica).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec

Check = Callable[[], Awaitable[Any]]


def informative(check: Check) -> Check:
    """Mark ``check`` as informative: reported, never failing ``/ready``. Returns it."""
    check.required = False  # type: ignore[attr-defined]
    return check


def required(check: Check, value: bool = True) -> Check:
    """Mark ``check`` as required (``value`` true, the default for any check) or
    informative (``value`` false). Returns it."""
    check.required = value  # type: ignore[attr-defined]
    return check


def is_required(check: Any) -> bool:
    """Whether a failing ``check`` makes the server not ready (unmarked checks are)."""
    return bool(getattr(check, "required", True))


class CachedCheck:
    """An async check whose outcome (value or exception) is kept for ``ttl`` seconds.

    Concurrent callers share one run. ``required`` marks it as :func:`required` does.

    :param check: the check to run.
    :param ttl: seconds an outcome is reused; ``0`` runs it every time.
    :param required: whether a failure makes the server not ready.
    :param clock: a monotonic clock (tests inject one).
    """

    def __init__(self, check: Check, ttl: float, *, required: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.check = check
        self.ttl = ttl
        self.required = required
        self.clock = clock
        self._at: float | None = None
        self._value: Any = None
        self._error: BaseException | None = None
        self._running: asyncio.Future[Any] | None = None

    async def __call__(self) -> Any:
        now = self.clock()
        if self._at is not None and now - self._at < self.ttl:
            if self._error is not None:
                raise self._error
            return self._value
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        running = self._running
        return await asyncio.shield(running)

    async def _run(self) -> Any:
        try:
            value = await self.check()
        except Exception as exc:
            self._error, self._value = exc, None
            raise
        else:
            self._error, self._value = None, value
            return value
        finally:
            self._at = self.clock()
            self._running = None


class ProviderHealth(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The health check of an LLM provider skill (``skills.<provider>.health``).

    :ivar check: probe the provider (``GET {base_url}/models``) from ``/health/detailed``
        and ``/ready``.
    :ivar required: a failing probe makes ``/ready`` answer 503 (the replica leaves the
        load balancer); by default it only informs (``/health/detailed`` says
        ``degraded``, ``robutler_agent_health`` of the agent drops to 0).
    :ivar cache_seconds: seconds a probe's outcome is reused.
    :ivar timeout: seconds one probe may take.
    """

    check: bool = True
    required: bool = False
    cache_seconds: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0


__all__ = ["CachedCheck", "Check", "ProviderHealth", "informative", "is_required", "required"]

"""A backend behind a guard: opened lazily and retried, bounded in time, failures as 503.

One :class:`Store` per backend location, shared by every agent that uses the same
file or database table (through ``kernel.state``), so ten agents do not open ten pools.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from robutler_specs import ServiceUnavailable

from .backends import Backend

T = TypeVar("T")
log = logging.getLogger("robutler.plugins.longterm")

STATE_KEY = "long_term_memory.stores"


class Store:
    """Guards a :class:`Backend`.

    - ``start`` tries to open it; if that fails the kernel still starts (health checks
      report it, requests get 503) and the next request tries again, at most once per
      ``retry_interval`` seconds (in between, requests fail fast).
    - Every operation has ``timeout`` seconds.
    - A backend error becomes :class:`ServiceUnavailable` naming the backend, where it
      lives and the setting to check.

    :param backend: the backend.
    :param setting: the config setting to check, for error messages.
    :param timeout: seconds per operation (and to open).
    :param retry_interval: seconds between attempts to open a backend that failed.
    """

    def __init__(self, backend: Backend, *, setting: str, timeout: float, retry_interval: float) -> None:
        self.backend = backend
        self.setting = setting
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.refs = 0
        self._open = False
        self._lock = asyncio.Lock()
        self._last_attempt = float("-inf")
        self._last_error: str | None = None

    @property
    def name(self) -> str:
        """The health check name: backend kind and location."""
        return f"long_term_memory:{self.backend.kind}:{self.backend.label}"

    def unavailable(self, reason: str) -> ServiceUnavailable:
        """The 503 for this backend."""
        return ServiceUnavailable(
            f"long-term memory backend {self.backend.kind} ({self.backend.label}) is unavailable: "
            f"{reason}; check {self.setting}",
            code="memory_backend_unavailable",
            plugin="long_term_memory",
        )

    async def start(self) -> None:
        """Try to open the backend now; a failure is logged and retried on use."""
        try:
            await self._ensure_open()
        except ServiceUnavailable as exc:
            log.error("%s (will retry on use)", exc.message)

    async def stop(self) -> None:
        """Close the backend."""
        async with self._lock:
            self._open = False
            try:
                await self.backend.close()
            except Exception:
                log.exception("closing %s failed", self.name)

    async def _ensure_open(self) -> None:
        if self._open:
            return
        async with self._lock:
            if self._open:
                return
            if time.monotonic() - self._last_attempt < self.retry_interval and self._last_error:
                raise self.unavailable(self._last_error)
            self._last_attempt = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout):
                    await self.backend.open()
            except TimeoutError:
                self._last_error = f"it did not answer within {self.timeout:g} s"
            except Exception as exc:
                if not self.backend.is_backend_error(exc):
                    raise
                self._last_error = f"{type(exc).__name__}: {exc}"
            else:
                self._open, self._last_error = True, None
                return
            await self._close_quietly()
            raise self.unavailable(self._last_error)

    async def _close_quietly(self) -> None:
        try:
            await self.backend.close()
        except Exception:  # a half-opened backend may fail to close; nothing to keep
            log.debug("closing %s after a failed open", self.name, exc_info=True)

    async def call(self, op: Callable[[Backend], Awaitable[T]]) -> T:
        """Run ``op(backend)`` with the guard's timeout; backend failures become 503."""
        await self._ensure_open()
        try:
            async with asyncio.timeout(self.timeout):
                return await op(self.backend)
        except TimeoutError:
            raise self.unavailable(f"it did not answer within {self.timeout:g} s") from None
        except Exception as exc:
            if self.backend.is_backend_error(exc):
                raise self.unavailable(f"{type(exc).__name__}: {exc}") from exc
            raise

    async def check(self) -> dict[str, Any]:
        """The health check: open if needed, then ``ping`` (``SELECT 1``)."""
        await self.call(lambda b: b.ping())
        return {"backend": self.backend.kind, "location": self.backend.label}


def acquire(state: dict[str, Any] | None, key: tuple[str, ...], factory: Callable[[], Store]) -> Store:
    """The shared store for ``key`` (made by ``factory`` the first time), one reference more.

    ``state`` is ``kernel.state``; without a kernel the store is private.
    """
    if state is None:
        store = factory()
    else:
        stores: dict[tuple[str, ...], Store] = state.setdefault(STATE_KEY, {})
        store = stores.get(key) or stores.setdefault(key, factory())
    store.refs += 1
    return store


async def release(state: dict[str, Any] | None, key: tuple[str, ...], store: Store) -> None:
    """Drop one reference; the last one closes the store."""
    store.refs -= 1
    if store.refs > 0:
        return
    if state is not None:
        stores = state.get(STATE_KEY, {})
        if stores.get(key) is store:
            del stores[key]
    await store.stop()

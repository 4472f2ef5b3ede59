"""The kernel's own :class:`~robutler_specs.StateStore`: in-process, with expiry.

Used when no plugin provides a shared one (``robutler_state_store``). It lives as long as
the process: with several replicas, configure a shared store (the memory plugin's Redis).
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Entries kept before the oldest are dropped (a bound on memory, not a cache policy).
MAX_ENTRIES = 100_000


class MemoryStateStore:
    """Bytes by key with a time to live, in this process.

    :param clock: seconds, monotonic (injectable for tests).
    :param max_entries: the most entries kept; past it, expired ones go first, then the oldest.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._max = max_entries
        self._data: dict[str, tuple[float, bytes]] = {}

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` when absent or expired."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        self._data.pop(key, None)
        if len(self._data) >= self._max:
            self._evict()
        self._data[key] = (self._clock() + ttl, value)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there (and not expired)."""
        entry = self._data.pop(key, None)
        return entry is not None and entry[0] > self._clock()

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._data.items() if expires <= now]:
            del self._data[key]
        while len(self._data) >= self._max:
            del self._data[next(iter(self._data))]  # insertion order: the oldest


__all__ = ["MAX_ENTRIES", "MemoryStateStore"]

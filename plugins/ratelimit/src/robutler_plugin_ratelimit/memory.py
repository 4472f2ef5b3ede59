"""The in-process backend: one float per bucket in a dict (one process only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from .gcra import Limit, State, charge, decide

#: Buckets written between two sweeps of the ones that are full again (and so forgotten).
SWEEP_EVERY = 4096


class MemoryLimiter:
    """GCRA buckets in this process.

    :param clock: seconds now (wall clock by default; tests inject their own).
    """

    shared = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.buckets: dict[str, float] = {}
        self._writes = 0

    async def acquire(self, limits: Sequence[tuple[Limit, int]]) -> tuple[float, list[State]]:
        """Check every ``(limit, cost)`` and, when all fit, spend them all (all or nothing).
        Returns the time of the decision and each bucket's state."""
        now = self.clock()
        buckets = self.buckets
        states = [decide(buckets.get(limit.key), now, limit, cost) for limit, cost in limits]
        if not all(state.allowed for state in states):
            # Nothing is spent: report each bucket as it stays.
            unspent = [decide(buckets.get(limit.key), now, limit, 0).tat for limit, _ in limits]
            return now, [state._replace(tat=tat) for state, tat in zip(states, unspent, strict=True)]
        for (limit, cost), state in zip(limits, states, strict=True):
            if cost:
                buckets[limit.key] = state.tat
        self._wrote(now)
        return now, states

    async def charge(self, limits: Sequence[tuple[Limit, int]]) -> tuple[float, list[float]]:
        """Spend ``cost`` units of each bucket unconditionally. Returns the time and the
        buckets' new times."""
        now = self.clock()
        buckets = self.buckets
        tats = []
        for limit, cost in limits:
            tat = buckets[limit.key] = charge(buckets.get(limit.key), now, limit, cost)
            tats.append(tat)
        self._wrote(now)
        return now, tats

    def _wrote(self, now: float) -> None:
        self._writes += 1
        if self._writes >= SWEEP_EVERY:
            # A bucket whose time has passed is full: forgetting it changes nothing.
            self._writes = 0
            self.buckets = {k: v for k, v in self.buckets.items() if v > now}

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def ping(self) -> None:
        """Always healthy."""


__all__ = ["MemoryLimiter"]

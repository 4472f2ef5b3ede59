"""The algorithm: GCRA (the generic cell rate algorithm), one number per bucket.

A limit of ``limit`` units per ``window`` seconds spaces units ``interval = window / limit``
apart. Each bucket keeps one number, its *theoretical arrival time* ``tat``: when the
bucket would be empty again had every unit been spent at the steady rate. Spending
``cost`` units moves it to ``max(tat, now) + cost * interval``; that is allowed while the
new ``tat`` is at most ``window`` ahead of ``now``. So a caller may spend a whole window's
budget at once (a burst of ``limit``), then ``limit`` per window at a steady pace; no
window edges (twice the limit around a fixed window's boundary cannot happen), no list of
timestamps (a sliding log's memory), one key per bucket in Redis.

From ``tat`` follow the numbers OpenAI's headers report: what remains (``(window - (tat -
now)) / interval`` units) and when the bucket is full again (``tat - now`` seconds).

Both backends (:mod:`.memory`, :mod:`.redis_backend`) run exactly these rules; the Redis
one as a Lua script, so the check and the update of every bucket of a request are one
atomic step shared by all replicas.
"""

from __future__ import annotations

import math
from typing import NamedTuple

#: Slack for float rounding: a request landing exactly on its budget is allowed.
EPSILON = 1e-9


class Limit(NamedTuple):
    """One bucket to check or charge.

    :ivar key: the bucket's name (caller, scope, kind).
    :ivar limit: units allowed per ``window``.
    :ivar window: seconds (60 for "per minute").
    """

    key: str
    limit: int
    window: float = 60.0

    @property
    def interval(self) -> float:
        """Seconds one unit takes to come back."""
        return self.window / self.limit


class State(NamedTuple):
    """A bucket after a decision.

    :ivar allowed: whether the units fit (always true for a charge after the fact).
    :ivar tat: the bucket's theoretical arrival time after the decision.
    :ivar retry_after: seconds until the units would fit (0 when allowed).
    """

    allowed: bool
    tat: float
    retry_after: float


def decide(tat: float | None, now: float, limit: Limit, cost: int) -> State:
    """Whether ``cost`` units fit in a bucket whose stored time is ``tat`` (``None``: a new,
    full bucket), and the bucket's time if they are spent."""
    start = now if tat is None or tat < now else tat
    new = start + cost * limit.interval
    late = new - now - limit.window
    if late > EPSILON:
        return State(False, start, late)
    return State(True, new, 0.0)


def charge(tat: float | None, now: float, limit: Limit, cost: int) -> float:
    """The bucket's time after ``cost`` units spent unconditionally (tokens, counted after
    the request that used them: a bucket may go over its window, and the caller then waits
    until it is back under)."""
    start = now if tat is None or tat < now else tat
    return start + cost * limit.interval


def remaining(tat: float, now: float, limit: Limit) -> int:
    """Units that may still be spent at once."""
    ahead = max(tat - now, 0.0)
    return max(0, min(limit.limit, math.floor((limit.window - ahead) / limit.interval + EPSILON)))


def reset_after(tat: float, now: float) -> float:
    """Seconds until the bucket is full again."""
    return max(tat - now, 0.0)


def format_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{rest}s"


__all__ = ["EPSILON", "Limit", "State", "charge", "decide", "format_duration", "remaining", "reset_after"]

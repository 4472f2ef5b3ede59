"""The Redis backend: the same GCRA buckets, one string key each, shared by every replica.

A request's buckets (this agent's and the global ones, requests and tokens) are checked and
spent by one Lua script: atomic on the server, so two replicas can never both spend the
last unit, and one round trip per request. Times are the caller's clock when one is given
(tests), else the Redis server's (``TIME``), so replicas with skewed clocks still agree.
Keys expire once their bucket is full again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from .gcra import Limit, State

#: KEYS: the buckets. ARGV[1]: now in seconds ("" for the server's clock); ARGV[2]:
#: "acquire" (all or nothing: spend only when every bucket has room) or "charge" (spend
#: unconditionally); then per key: interval, window, cost. Reply: now, then per key
#: allowed (1/0), the bucket's time after the call, seconds until it would fit.
SCRIPT = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local acquire = ARGV[2] == 'acquire'
local n = #KEYS
local starts, news, lates, costs = {}, {}, {}, {}
local ok = true
for i = 1, n do
  local base = 2 + (i - 1) * 3
  local interval = tonumber(ARGV[base + 1])
  local window = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if (not tat) or tat < now then tat = now end
  local new = tat + cost * interval
  local late = new - now - window
  if acquire and late > 1e-9 then ok = false else late = 0 end
  starts[i], news[i], lates[i], costs[i] = tat, new, late, cost
end
local reply = {string.format('%.17g', now)}
for i = 1, n do
  local tat = starts[i]
  if ok then
    tat = news[i]
    if costs[i] > 0 then
      redis.call('SET', KEYS[i], string.format('%.17g', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
    end
  end
  local allowed = 1
  if lates[i] > 0 then allowed = 0 end
  reply[#reply + 1] = allowed
  reply[#reply + 1] = string.format('%.17g', tat)
  reply[#reply + 1] = string.format('%.17g', lates[i])
end
return reply
"""


class RedisLimiter:
    """GCRA buckets in Redis.

    :param url: the Redis URL.
    :param prefix: prepended to every bucket's key.
    :param timeout: seconds one Redis call may take.
    :param clock: seconds now; ``None`` uses the Redis server's clock.
    """

    shared = True

    def __init__(self, url: str, *, prefix: str, timeout: float,
                 clock: Callable[[], float] | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.clock = clock
        self.client: Any = None
        self._script: Any = None

    async def start(self) -> None:
        """Open the connection pool (connections are made on first use).

        :raises ValueError: ``url`` is not a Redis URL.
        """
        self.client = aioredis.Redis.from_url(
            self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
        )
        self._script = self.client.register_script(SCRIPT)

    async def close(self) -> None:
        """Close the connections."""
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self.client.ping()

    async def _run(self, mode: str, limits: Sequence[tuple[Limit, int]]) -> tuple[float, list[State]]:
        args: list[Any] = ["" if self.clock is None else repr(self.clock()), mode]
        for limit, cost in limits:
            args += [repr(limit.interval), repr(limit.window), cost]
        reply = await self._script(keys=[self.prefix + limit.key for limit, _ in limits], args=args)
        states = [
            State(int(reply[i]) == 1, float(reply[i + 1]), float(reply[i + 2]))
            for i in range(1, len(reply), 3)
        ]
        return float(reply[0]), states

    async def acquire(self, limits: Sequence[tuple[Limit, int]]) -> tuple[float, list[State]]:
        """Check every ``(limit, cost)`` and, when all fit, spend them all (all or nothing).
        Returns the time of the decision and each bucket's state."""
        return await self._run("acquire", limits)

    async def charge(self, limits: Sequence[tuple[Limit, int]]) -> tuple[float, list[float]]:
        """Spend ``cost`` units of each bucket unconditionally. Returns the time and the
        buckets' new times."""
        now, states = await self._run("charge", limits)
        return now, [state.tat for state in states]


__all__ = ["SCRIPT", "RedisLimiter"]

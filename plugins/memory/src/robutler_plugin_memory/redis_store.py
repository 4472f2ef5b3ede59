"""The Redis backend: one list per conversation, shared by every replica.

Key ``<key_prefix><agent>:<conversation>``; one list item per message, encoded by
:mod:`.codec`. A read is one small Lua script (``LRANGE``, joined into one reply). A write
is one Lua script (atomic on the server: no other command runs in
between): push the new messages, cut the list to the window (the rule of
:func:`.window.window_start`, whole tool groups only), and set the TTL. So a crash or a
lost connection leaves the conversation either before or after the write, never half.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from robutler_specs import Message

from .codec import decode, encode
from .store import StoreUnavailable

log = logging.getLogger("robutler.memory")

#: KEYS[1] the list; ARGV: max_messages, max_tokens (0: none), ttl in ms (0: none),
#: replace ("1": drop what is there first), then the items to push.
#: Mirrors window.window_start: walk back from the newest item, a group starts at every
#: item that is not a tool result ("<tokens>:t:..."), keep whole groups while both limits
#: hold, always keep the newest group.
WRITE_SCRIPT = """
local key = KEYS[1]
local max_messages = tonumber(ARGV[1])
local max_tokens = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if ARGV[4] == '1' then redis.call('DEL', key) end
local n = #ARGV
local i = 5
while i <= n do
  local j = math.min(i + 499, n)
  redis.call('RPUSH', key, unpack(ARGV, i, j))
  i = j + 1
end
local items = redis.call('LRANGE', key, 0, -1)
local total = #items
local start = total
local count, tokens, group_count, group_tokens = 0, 0, 0, 0
local first = true
for index = total, 1, -1 do
  local t, kind = string.match(items[index], '^(%d+):(%a):')
  group_count = group_count + 1
  group_tokens = group_tokens + (tonumber(t) or 0)
  if kind ~= 't' then
    if (not first) and (count + group_count > max_messages
        or (max_tokens > 0 and tokens + group_tokens > max_tokens)) then
      break
    end
    first = false
    count = count + group_count
    tokens = tokens + group_tokens
    group_count, group_tokens = 0, 0
    start = index - 1
  end
end
if start >= total then
  redis.call('DEL', key)
  return 0
end
if start > 0 then redis.call('LTRIM', key, start, -1) end
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return total - start
"""

#: KEYS[1] the list. The whole list as ONE reply, items joined by newlines: redis-py parses
#: a multi-item reply in Python (microseconds per item), one bulk string in one go. A stored
#: item never holds a newline byte (JSON escapes them; the header has none).
READ_SCRIPT = """
return table.concat(redis.call('LRANGE', KEYS[1], 0, -1), '\\n')
"""

#: Where shared clients live in ``kernel.state``: one pool per Redis URL for all agents.
STATE_KEY = "robutler_plugin_memory.redis_clients"


def redact(url: str) -> str:
    """``url`` without its password (for messages and health check names)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def make_client(url: str, timeout: float) -> aioredis.Redis:
    """A client with its own connection pool, failing fast when Redis is down.

    :raises ValueError: ``url`` is not a Redis URL.
    """
    # One quick retry (a pooled connection may be stale after a Redis restart), no
    # backoff: a down Redis must give a prompt 503, not a stalled request.
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )


class SharedClients:
    """Reference-counted Redis clients by URL, kept in ``kernel.state`` so that every
    agent on one Redis shares one pool."""

    def __init__(self) -> None:
        self._clients: dict[str, tuple[aioredis.Redis, int]] = {}

    def acquire(self, url: str, timeout: float) -> aioredis.Redis:
        """The client for ``url`` (created on first use)."""
        client, refs = self._clients.get(url) or (make_client(url, timeout), 0)
        self._clients[url] = (client, refs + 1)
        return client

    async def release(self, url: str) -> None:
        """Give a client back; the last release closes its pool."""
        client, refs = self._clients[url]
        if refs > 1:
            self._clients[url] = (client, refs - 1)
            return
        del self._clients[url]
        await client.aclose()


class RedisStore:
    """Conversations in Redis lists (see the module docstring).

    :param url: the Redis URL.
    :param max_messages: window size in messages.
    :param max_tokens: window size in estimated tokens, or ``None``.
    :param ttl_seconds: expire a conversation this long after its last write, or ``None``.
    :param timeout: seconds one operation may take.
    :param shared: where to share the client with other agents (``None``: a private one).
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        max_messages: int,
        max_tokens: int | None,
        ttl_seconds: float | None,
        timeout: float,
        shared: SharedClients | None = None,
    ) -> None:
        self.url = url
        self.max_messages = max_messages
        self.max_tokens = max_tokens
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self.shared = shared
        self.description = f"redis at {redact(url)}"
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._read: Any = None

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client (after :meth:`start`)."""
        if self._client is None:
            raise RuntimeError("RedisStore used before start()")
        return self._client

    async def start(self) -> None:
        """Create (or share) the connection pool and check Redis once.

        Redis being down is not fatal here: requests get a 503 and ``/ready`` fails until
        it is back, so a replica can start before its Redis does.

        :raises ValueError: the URL is not a Redis URL.
        """
        if self.shared is not None:
            self._client = self.shared.acquire(self.url, self.timeout)
        else:
            self._client = make_client(self.url, self.timeout)
        self._script = self._client.register_script(WRITE_SCRIPT)
        self._read = self._client.register_script(READ_SCRIPT)
        try:
            await self.ping()
        except StoreUnavailable as exc:
            log.warning(
                "short_term_memory: %s is not reachable yet (%s); requests get 503 until it is",
                self.description, exc.cause,
            )

    async def stop(self) -> None:
        """Release the connection pool."""
        if self._client is None:
            return
        client, self._client = self._client, None
        if self.shared is not None:
            await self.shared.release(self.url)
        else:
            await client.aclose()

    async def _run(self, operation: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await operation
        except TimeoutError:
            raise StoreUnavailable(self.description, f"no answer within {self.timeout:g} s") from None
        except ResponseError as exc:
            # WRONGTYPE and the like: another program uses our keys.
            raise StoreUnavailable(
                self.description, f"Redis refused the command ({exc}); is key_prefix shared with other data?"
            ) from None
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(self.description, f"{type(exc).__name__}: {exc}") from None

    async def ping(self) -> bool:
        """PING, within the timeout.

        :raises StoreUnavailable: no PONG in time.
        """
        return bool(await self._run(self.client.ping()))

    async def load(self, key: str) -> list[Message]:
        """The stored conversation (items this plugin cannot read are skipped, logged)."""
        blob = await self._run(self._read(keys=[key]))
        messages = []
        for item in blob.split(b"\n") if blob else ():
            try:
                messages.append(decode(item))
            except ValueError as exc:
                log.warning("short_term_memory: skipping an unreadable item of %s: %s", key, exc)
        return messages

    async def _write(self, key: str, messages: list[Message], replace: bool) -> int:
        ttl_ms = 0 if self.ttl_seconds is None else max(1, round(self.ttl_seconds * 1000))
        args: list[Any] = [self.max_messages, self.max_tokens or 0, ttl_ms, "1" if replace else "0"]
        args.extend(encode(m) for m in messages)
        return int(await self._run(self._script(keys=[key], args=args)))

    async def append(self, key: str, messages: list[Message]) -> None:
        """Push, trim to the window and set the TTL, in one atomic script."""
        if messages:
            await self._write(key, messages, replace=False)

    async def replace(self, key: str, messages: list[Message]) -> None:
        """Replace the whole list (windowed) in one atomic script."""
        await self._write(key, messages, replace=True)

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """``short_term_memory:redis <url>``: PING with the timeout (one check per Redis,
        however many agents use it)."""

        async def check() -> str:
            await self.ping()
            return "PONG"

        return {f"short_term_memory:{self.description}": check}


__all__ = ["READ_SCRIPT", "STATE_KEY", "WRITE_SCRIPT", "RedisStore", "SharedClients", "make_client", "redact"]

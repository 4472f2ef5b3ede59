"""The Redis backend: one list per conversation, shared by every replica.

Key ``<key_prefix><agent>:<conversation>``; one list item per message, encoded by
:mod:`.codec`. A read is one ``LRANGE``, parsed by hiredis, each item decoded by msgspec
(a Lua script that cut the headers off and joined the items into one JSON array cost Redis
ten times the ``LRANGE``, to save the client about what the split costs). A write is one
``EVAL`` of a Lua script
(atomic on the server: no other command runs in between): push the new messages, cut the
list to the window (the rule of :func:`.window.window_start`, whole tool groups only), and
set the TTL. So a crash or a lost connection leaves the conversation either before or after
the write, never half. Both go through :class:`.resp.RespClient`: one pipelined connection
per Redis URL, shared by every agent on it.

The request waits for the read only. :meth:`RedisStore.write_soon` queues the write on that
connection before the answer is sent (it leaves in the same event-loop turn, with the other
requests' commands) and takes its reply in the background (a failure is logged by the
caller's callback): Redis runs one connection's commands in order, so every later read of
this process, the next turn's included, comes after the write. The write is
sent as ``EVAL`` (the script's text; Redis caches it by its SHA1), never ``EVALSHA``: a
``NOSCRIPT`` reply found after the request ended could only be repeated behind later reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError, ResponseError

from robutler_specs import Message

from .codec import decode_all, encode
from .resp import RespClient
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

WRITE_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest()

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


def make_client(url: str, timeout: float) -> RespClient:
    """A client with its own connection, failing fast when Redis is down (connecting may
    take ``timeout`` seconds; each operation is bounded by the store).

    :raises ValueError: ``url`` is not a Redis URL.
    """
    return RespClient(url, connect_timeout=timeout)


class SharedClients:
    """Reference-counted Redis clients by URL, kept in ``kernel.state`` so that every
    agent on one Redis shares one connection."""

    def __init__(self) -> None:
        self._clients: dict[str, tuple[RespClient, int]] = {}

    def acquire(self, url: str, timeout: float) -> RespClient:
        """The client for ``url`` (created on first use)."""
        client, refs = self._clients.get(url) or (make_client(url, timeout), 0)
        self._clients[url] = (client, refs + 1)
        return client

    async def release(self, url: str) -> None:
        """Give a client back; the last release closes its connection."""
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
        self._client: RespClient | None = None
        #: Writes sent by :meth:`write_soon` whose reply has not come yet.
        self._in_flight: set[asyncio.Future[Any]] = set()
        #: Commands waiting for their reply, with their deadlines (see :meth:`_watch`).
        self._deadlines: dict[asyncio.Future[Any], float] = {}
        self._watchdog: asyncio.TimerHandle | None = None
        ttl_ms = 0 if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        #: The write script's arguments before the items, packed once.
        self._write_args = (max_messages, max_tokens or 0, ttl_ms)

    @property
    def client(self) -> RespClient:
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
        try:
            await self.ping()
        except StoreUnavailable as exc:
            log.warning(
                "short_term_memory: %s is not reachable yet (%s); requests get 503 until it is",
                self.description, exc.cause,
            )

    async def stop(self) -> None:
        """Wait for the writes in flight (at most ``timeout_seconds``), then release the
        connection."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=self.timeout)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._client is None:
            return
        client, self._client = self._client, None
        if self.shared is not None:
            await self.shared.release(self.url)
        else:
            await client.aclose()

    def _failure(self, exc: BaseException) -> StoreUnavailable:
        """What a failed operation is, for people."""
        if isinstance(exc, TimeoutError):
            return StoreUnavailable(self.description, f"no answer within {self.timeout:g} s")
        if isinstance(exc, ResponseError):
            # WRONGTYPE and the like: another program uses our keys.
            return StoreUnavailable(
                self.description, f"Redis refused the command ({exc}); is key_prefix shared with other data?"
            )
        return StoreUnavailable(self.description, f"{type(exc).__name__}: {exc}")

    async def _run(self, operation: Awaitable[Any]) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await operation
        except TimeoutError as exc:
            if self._client is not None:
                self._client.reset()  # a stuck connection is not reused
            raise self._failure(exc) from None
        except (RedisError, OSError) as exc:
            raise self._failure(exc) from None

    async def _call(self, *args: Any) -> Any:
        """One command within the timeout: on the open connection, its reply watched by
        :meth:`_watch` (a dict entry, not a timer of its own); else through :meth:`_run`,
        connecting first."""
        future = self.client.send(*args)
        if future is None:
            return await self._run(self.client.execute(*args))
        self._watch(future)
        try:
            return await future
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._failure(exc) from None
        finally:
            self._deadlines.pop(future, None)

    def _watch(self, future: asyncio.Future[Any]) -> None:
        """Fail ``future`` with ``TimeoutError`` if no reply comes within the timeout.

        Every command gets the same timeout, so the deadlines are in insertion order: one
        timer, set for the oldest, serves them all.
        """
        loop = asyncio.get_running_loop()
        self._deadlines[future] = loop.time() + self.timeout
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._check_deadlines)

    def _check_deadlines(self) -> None:
        self._watchdog = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired = []
        for future, deadline in self._deadlines.items():
            if deadline > now:
                break
            expired.append(future)
        for future in expired:
            del self._deadlines[future]
            self._expire(future)
        if self._deadlines:
            oldest = next(iter(self._deadlines.values()))
            self._watchdog = loop.call_later(max(0.0, oldest - now), self._check_deadlines)

    async def ping(self) -> bool:
        """PING, within the timeout.

        :raises StoreUnavailable: no PONG in time.
        """
        return await self._call("PING") in (b"PONG", "PONG")

    async def load(self, key: str) -> list[Message]:
        """The stored conversation (items this plugin cannot read are skipped, logged)."""
        messages, skipped = decode_all(await self._call("LRANGE", key, 0, -1))
        if skipped:
            log.warning("short_term_memory: skipping %d unreadable item(s) of %s", skipped, key)
        return messages

    def _command(self, key: str, messages: list[Message], replace: bool) -> list[Any]:
        """The write: ``EVAL`` of the window script with this turn's items."""
        command: list[Any] = ["EVAL", WRITE_SCRIPT, 1, key, *self._write_args, "1" if replace else "0"]
        command.extend(encode(m) for m in messages)
        return command

    async def _write(self, key: str, messages: list[Message], replace: bool) -> int:
        return int(await self._call(*self._command(key, messages, replace)))

    async def append(self, key: str, messages: list[Message]) -> None:
        """Push, trim to the window and set the TTL, in one atomic script."""
        if messages:
            await self._write(key, messages, replace=False)

    async def replace(self, key: str, messages: list[Message]) -> None:
        """Replace the whole list (windowed) in one atomic script."""
        await self._write(key, messages, replace=True)

    def write_soon(self, key: str, messages: list[Message], *, replace: bool,
                   failed: Callable[[StoreUnavailable], None]) -> bool:
        """Send :meth:`append` (or :meth:`replace`) now, without waiting for Redis's reply.

        The write is queued before this returns, on the connection every later command of
        this process uses (it leaves in this event-loop turn), so every later read (the
        conversation's next turn on this server) sees it. Its reply is taken in the background: a refusal, a lost
        connection or no reply within ``timeout_seconds`` calls ``failed`` (then the write
        was not applied, or it was and its reply was lost, as with an awaited write).
        :meth:`stop` waits for the writes still in flight.

        :return: ``False`` when nothing was sent (no open connection): await
            :meth:`append` / :meth:`replace` instead, which connect first.
        """
        if not messages and not replace:
            return True
        client = self._client
        future = None if client is None else client.send(*self._command(key, messages, replace))
        if future is None:
            return False
        self._watch(future)
        self._in_flight.add(future)
        future.add_done_callback(partial(self._written, failed))
        return True

    def _expire(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.set_exception(TimeoutError())
            if self._client is not None:
                self._client.reset()  # a stuck connection is not reused

    def _written(self, failed: Callable[[StoreUnavailable], None], future: asyncio.Future[Any]) -> None:
        self._deadlines.pop(future, None)
        self._in_flight.discard(future)
        if future.cancelled():
            failed(StoreUnavailable(self.description, "the write was cancelled"))
        elif (exc := future.exception()) is not None:
            failed(self._failure(exc))

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """``short_term_memory:redis <url>``: PING with the timeout (one check per Redis,
        however many agents use it)."""

        async def check() -> str:
            await self.ping()
            return "PONG"

        return {f"short_term_memory:{self.description}": check}


__all__ = ["STATE_KEY", "WRITE_SCRIPT", "WRITE_SHA", "RedisStore", "SharedClients", "make_client", "redact"]

"""A small Redis client for the memory's hot path: one pipelined connection, RESP parsed in C.

Every agent on one Redis URL shares one :class:`RespClient`. Its single connection carries
the commands of all concurrent requests, pipelined: a command is packed once
(``hiredis.pack_command``), queued, and written together with the other commands queued in
the same event-loop turn (one ``send`` for many requests); replies come back in order and
are parsed by ``hiredis.Reader``. Per command that is a few microseconds of Python, where
redis-py's general client (connection pool checkout and release, retry wrapper, response
callbacks, per-command timeout tasks) spent tens.

What it does not do is what the memory does not need: no pub/sub, no transactions, no
cluster, no RESP3. It connects the way redis-py does (it reads the URL with redis-py's own
parser: ``redis://``, ``rediss://``, ``unix://``, user, password, database), and a lost
connection fails the commands in flight (:class:`redis.exceptions.ConnectionError`); the
next command connects again. A command is never sent twice: a write that may have reached
Redis is reported as failed, never repeated.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


class _Protocol(asyncio.Protocol):
    """The connection: queued writes flushed once per loop turn, replies matched in order."""

    def __init__(self, client: RespClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.queued: list[bytes] = []
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # A small command must leave at once, not wait for the last one's ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, packed: bytes, future: asyncio.Future[Any]) -> None:
        if not self.queued:
            asyncio.get_running_loop().call_soon(self.flush)
        self.queued.append(packed)
        self.waiting.append(future)

    def flush(self) -> None:
        if self.queued and self.transport is not None and not self.transport.is_closing():
            data = self.queued[0] if len(self.queued) == 1 else b"".join(self.queued)
            self.queued.clear()
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.abort(RedisConnectionError(f"protocol error from Redis: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.abort(RedisConnectionError("Redis sent a reply no command asked for"))
                return
            future = waiting.popleft()
            if not future.done():  # a cancelled command's reply is dropped
                if isinstance(reply, hiredis.ReplyError):
                    text = str(reply)
                    future.set_exception(NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text))
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection closed by server ({exc})" if exc else "Connection closed by server."))

    def fail(self, error: Exception) -> None:
        self.lost = self.lost or error
        self.transport = None
        self.client.forget(self)
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)
        self.queued.clear()

    def abort(self, error: Exception) -> None:
        transport = self.transport
        self.fail(error)
        if transport is not None:
            transport.abort()


class RespClient:
    """Commands over one shared, pipelined connection to the Redis at ``url``.

    :param url: any URL redis-py accepts.
    :param connect_timeout: seconds connecting (and authenticating) may take.
    :raises ValueError: ``url`` is not a Redis URL.
    """

    def __init__(self, url: str, *, connect_timeout: float) -> None:
        options = parse_url(url)
        self.connect_timeout = connect_timeout
        self.path: str | None = options.get("path")
        self.host: str = options.get("host") or "localhost"
        self.port: int = int(options.get("port") or 6379)
        self.db = int(options.get("db") or 0)
        self.username: str | None = options.get("username")
        self.password: str | None = options.get("password")
        self.ssl: ssl.SSLContext | None = None
        kind = options.get("connection_class")
        if kind is UnixDomainSocketConnection and not self.path:
            raise ValueError(f"no socket path in {url!r}")
        if kind is SSLConnection:
            context = ssl.create_default_context()
            if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.ssl = context
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._scripts: dict[str, str] = {}

    # -- the connection ---------------------------------------------------------------

    def forget(self, protocol: _Protocol) -> None:
        """``protocol``'s connection is gone: the next command connects again."""
        if self._protocol is protocol:
            self._protocol = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        client = self

        async with asyncio.timeout(self.connect_timeout):
            if self.path:
                _, protocol = await loop.create_unix_connection(lambda: _Protocol(client), self.path)
            else:
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(client), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
            hello: list[tuple[Any, ...]] = []
            if self.password is not None:
                hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
            if self.db:
                hello.append(("SELECT", self.db))
            try:
                for command in hello:
                    future: asyncio.Future[Any] = loop.create_future()
                    protocol.send(hiredis.pack_command(command), future)
                    await future
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.abort()
                raise
        return protocol

    async def _connection(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            protocol = await asyncio.shield(connecting)
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to {self.path or f'{self.host}:{self.port}'}: {exc}") from None
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        if protocol.lost is None:
            self._protocol = protocol
        return protocol

    def reset(self) -> None:
        """Drop the connection (after a timeout: a stuck connection is not reused); the
        commands in flight on it fail."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.abort(RedisConnectionError("the connection was reset after a timeout"))

    # -- commands -----------------------------------------------------------------------

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        """Send one command; the future is its reply.

        Connected: the command is queued at once (the caller's order is the wire order).
        Else the returned awaitable connects first.
        """
        future = self.send(*args)
        if future is None:
            return asyncio.ensure_future(self._execute_connecting(hiredis.pack_command(args)))
        return future

    def send(self, *args: Any) -> asyncio.Future[Any] | None:
        """Queue one command on the open connection (written with the other commands of
        this event-loop turn); the future is its reply.

        A command queued later on this client, by anyone, reaches Redis after this one, and
        Redis runs one connection's commands in order: a later read sees this write.

        :return: ``None`` when there is no open connection (nothing was queued): use
            :meth:`execute`, which connects first.
        """
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or protocol.transport is None:
            return None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.send(hiredis.pack_command(args), future)
        return future

    async def _execute_connecting(self, packed: bytes) -> Any:
        protocol = await self._connection()
        if protocol.lost is not None:
            raise protocol.lost
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.send(packed, future)
        return await future

    async def evalsha(self, script: str, sha: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA1; when Redis does not know it (a restarted Redis),
        ``EVAL`` it once, which also caches it."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.execute("EVAL", script, len(keys), *keys, *args)

    async def ping(self) -> bool:
        """``PING``."""
        return bool(await self.execute("PING") in (b"PONG", "PONG"))

    async def aclose(self) -> None:
        """Close the connection (commands in flight fail)."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            transport = protocol.transport
            protocol.fail(RedisConnectionError("the client was closed"))
            transport.close()


__all__ = ["RespClient"]

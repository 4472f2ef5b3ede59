"""A lean HTTP/1.1 client for provider plugins: one origin, a keep-alive pool, nothing else.

A provider plugin talks to one upstream (``base_url``) with POSTs of a JSON body and reads
a JSON answer or an SSE stream. :class:`HTTPPool` does exactly that over asyncio's
transports, with a small incremental response parser: about a third of the CPU a
general-purpose client spends per call (no cookie jar, redirects, tracing, multidicts or
per-request objects beyond the response), which is most of what a proxy of an LLM costs.

What it does:

- ``http://`` and ``https://`` (the default TLS context, server name checked);
- keep-alive, at most ``max_connections`` open at once; a call that finds them all busy
  waits up to ``connect_timeout`` for one, then raises :class:`PoolTimeout`;
- bodies framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the connection's
  close; ``1xx`` interim answers skipped;
- ``connect_timeout`` for opening a connection (:class:`ConnectTimeout`), ``read_timeout``
  for every wait on the upstream (:class:`ReadTimeout`: the head, and each piece of body);
- a body that ends before its framing says (a connection closed or reset mid-way) raises
  :class:`Disconnected`: a cut-off answer never reads as a whole one;
- an idle connection the upstream closed just as a request was sent on it (nothing of an
  answer came back) is retried once on a new connection, as browsers and Go's client do;
  any other failure is the caller's to retry;
- reading is paused while more than 1 MiB of body waits to be consumed.

Idle connections are kept ``keepalive_timeout`` seconds; a host name is looked up at most
every ``DNS_TTL`` (10) seconds, its addresses tried in order. Errors derive from
:class:`HTTPError` (an ``OSError``); timeouts are also ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl as ssl_module
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlsplit

#: Most bytes of a response head (status line and headers).
MAX_HEAD = 64 * 1024
#: Body bytes buffered before reading from the socket pauses.
HIGH_WATER = 1024 * 1024
#: Seconds a host name's addresses are kept.
DNS_TTL = 10.0

_LENGTH, _CHUNKED, _CLOSE, _NONE = range(4)


class HTTPError(OSError):
    """Base of this client's errors."""


class ConnectError(HTTPError):
    """No connection could be made (refused, no such host...); the cause says why."""


class ConnectTimeout(HTTPError, TimeoutError):
    """No connection was made within ``connect_timeout``."""


class PoolTimeout(HTTPError, TimeoutError):
    """Every one of ``max_connections`` stayed busy for ``connect_timeout`` seconds."""


class ReadTimeout(HTTPError, TimeoutError):
    """The upstream sent nothing for ``read_timeout`` seconds."""


class Disconnected(HTTPError):
    """The connection was closed or reset before the answer was whole."""


class ProtocolError(HTTPError):
    """The upstream's bytes are not an HTTP/1.1 answer."""


class _Connection(asyncio.Protocol):
    """One connection and the parser of the answer being read on it."""

    def __init__(self, pool: HTTPPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.counted = True  # in the pool's count of open connections
        self._buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._paused = False
        self._reset()

    def _reset(self) -> None:
        # The state of one answer.
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.body_done = False
        self.keep_alive = True
        self.received = False  # any byte of this answer
        self._mode = _NONE
        self._left = 0  # bytes left of the body (_LENGTH) or of the chunk (_CHUNKED)
        self._chunk_state = 0  # 0: size line, 1: data, 2: CRLF after data, 3: trailers
        self.body: deque[bytes] = deque()
        self.buffered = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self._buf:
            self._buf += data
        else:
            self._buf = bytearray(data)
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)
            return
        if self.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost says the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._lost(self)
        if self.head_done and self._mode == _CLOSE and not self.body_done and exc is None:
            self.body_done = True  # a body framed by the close
            self.keep_alive = False
        elif not self.body_done or not self.head_done:
            what = "reset" if exc is not None else "closed"
            stage = "in the middle of the answer's body" if self.head_done else "before an answer"
            error = Disconnected(f"the upstream {what} the connection {stage}")
            if exc is not None:
                error.__cause__ = exc
            self._error = self._error or error
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(self._error or Disconnected("the upstream closed the connection"))

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # -- parsing

    def _parse(self) -> None:
        buf = self._buf
        while buf:
            if not self.head_done:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError(f"the answer's head is over {MAX_HEAD} bytes")
                    return
                if end > MAX_HEAD:
                    raise ProtocolError(f"the answer's head is over {MAX_HEAD} bytes")
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._head(head)
                continue
            if self.body_done:
                if buf:  # bytes after a whole answer: the connection cannot be reused
                    self.keep_alive = False
                    buf.clear()
                return
            if self._mode == _LENGTH:
                self._push_upto(buf)
                if not self._left:
                    self.body_done = True
            elif self._mode == _CLOSE:
                self._push(bytes(buf))
                buf.clear()
            else:
                self._chunked(buf)
                if not self.body_done:
                    return

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {status_line[:100]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for raw in lines[1:]:
            name, sep, value = raw.partition(b":")
            if not sep or not name or name != name.strip():
                raise ProtocolError(f"malformed header line: {raw[:100]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if 100 <= status < 200:
            return  # an interim answer (100 Continue...): the real one follows
        self.status, self.reason, self.headers, self.head_done = status, reason, headers, True
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        else:
            self.keep_alive = "close" not in connection
        if status in (204, 304):
            self._mode, self.body_done = _NONE, True
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode = _CHUNKED
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise ProtocolError(f"invalid Content-Length: {length[:50]!r}")
            self._mode, self._left = _LENGTH, int(length)
            self.body_done = self._left == 0
        else:
            self._mode, self.keep_alive = _CLOSE, False

    def _chunked(self, buf: bytearray) -> None:
        while buf and not self.body_done:
            state = self._chunk_state
            if state == 1:
                self._push_upto(buf)
                if not self._left:
                    self._chunk_state = 2
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("a chunk size or trailer line is too long")
                return
            line = bytes(buf[:end])
            del buf[: end + 2]
            if state == 0:
                size = line.split(b";", 1)[0].strip()
                try:
                    self._left = int(size, 16)
                except ValueError:
                    raise ProtocolError(f"invalid chunk size {size[:20]!r}") from None
                if self._left < 0:
                    raise ProtocolError(f"invalid chunk size {size[:20]!r}")
                self._chunk_state = 1 if self._left else 3
            elif state == 2:
                if line:
                    raise ProtocolError("a chunk's data is longer than its size")
                self._chunk_state = 0
            elif not line:  # state 3: the empty line after the trailers
                self.body_done = True

    def _push_upto(self, buf: bytearray) -> None:
        """Move up to ``self._left`` bytes of ``buf`` into the body."""
        take = min(self._left, len(buf))
        self._push(bytes(buf[:take]) if take < len(buf) else bytes(buf))
        del buf[:take]
        self._left -= take

    def _push(self, data: bytes) -> None:
        if data:
            self.body.append(data)
            self.buffered += len(data)

    # -- waiting

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._error = self._error or exc
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()
        self._wake()

    async def wait(self, timeout: float) -> None:
        """Wait for more of the answer (or its end, or an error) up to ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self) -> bytes:
        """The body received so far and not yet taken."""
        body = self.body
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    async def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if self._drain is not None:
            await self._drain

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("the upstream sent nothing within read_timeout"))


class HTTPResponse:
    """An answer whose head has arrived; its body is read with :meth:`read` or
    :meth:`iter_any`. Give the connection back with :meth:`release` (whole body read:
    kept for the next call) or :meth:`close` (dropped: how the upstream learns that a
    request was abandoned)."""

    __slots__ = ("_conn", "_done", "_timeout", "headers", "reason", "status")

    def __init__(self, conn: _Connection, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout
        self._done = False
        self.status = conn.status
        self.reason = conn.reason
        #: The headers, names in lower case (repeated ones joined with ", ").
        self.headers = conn.headers

    def at_eof(self) -> bool:
        """Whether the whole body has been read."""
        conn = self._conn
        return conn.body_done and not conn.body

    async def read(self) -> bytes:
        """The rest of the body."""
        conn = self._conn
        parts: list[bytes] = []
        while True:
            if conn.body:
                parts.append(conn.take())
            if conn.body_done:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            conn.raise_error()
            await conn.wait(self._timeout)

    def iter_any(self) -> AsyncIterator[bytes]:
        """The body as it arrives: whatever has come in at each step."""
        return _Pieces(self._conn, self._timeout)

    def release(self) -> None:
        """Done with the answer: a fully read one leaves its connection to the pool, else
        the connection is closed."""
        if self._done:
            return
        self._done = True
        self._conn.pool._release(self._conn)  # kept only if whole and reusable, else closed

    def close(self) -> None:
        """Drop the connection (the rest of the body is not read)."""
        if self._done:
            return
        self._done = True
        self._conn.close()
        self._conn.pool._release(self._conn)


class _Pieces:
    """:meth:`HTTPResponse.iter_any`'s iterator."""

    __slots__ = ("_conn", "_timeout")

    def __init__(self, conn: _Connection, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if conn.body:
                return conn.take()
            if conn.body_done:
                raise StopAsyncIteration
            conn.raise_error()
            await conn.wait(self._timeout)


class HTTPPool:
    """Connections to one origin, and requests on them.

    :param url: the origin (``http://host:port`` or ``https://host``); a path is ignored.
    :param max_connections: connections open at once, at most.
    :param connect_timeout: seconds to open a connection, and to wait for a free one.
    :param read_timeout: seconds any wait on the upstream may take.
    :param keepalive_timeout: seconds an idle connection is kept.
    :param ssl_context: TLS settings for ``https://`` (default: the system's, verified).
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 100,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        keepalive_timeout: float = 30.0,
        ssl_context: ssl_module.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        name = f"[{self.host}]" if ":" in self.host else self.host
        #: The ``Host`` header's value.
        self.authority = name if default_port else f"{name}:{self.port}"
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive_timeout = keepalive_timeout
        self._ssl = (ssl_context or ssl_module.create_default_context()) if self.tls else None
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._literal = _is_ip(self.host)
        self._dns: tuple[float, list[tuple[int, str]]] | None = None
        self._lookup: asyncio.Future[list[Any]] | None = None

    @property
    def open_connections(self) -> int:
        """Connections open now, busy or idle."""
        return self._open

    def head(self, method: str, target: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
        """A request head without its ``Content-Length`` line and final CRLF (a caller that
        sends many requests with the same headers builds it once)."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"a request line or header contains a line break: {line[:100]!r}")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    async def request(self, head: bytes, body: bytes = b"") -> HTTPResponse:
        """Send one request (``head`` from :meth:`head`, then ``body``) and wait for the
        answer's head (not for ``HEAD`` requests: their answers' framing is not read)."""
        data = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        conn, reused = await self._acquire()
        try:
            try:
                return await self._exchange(conn, data)
            except Disconnected:
                if not (reused and conn.closed and not conn.received):
                    raise
            # An idle connection the upstream had closed: once more on a new one.
            self._release(conn)
            conn, _ = await self._acquire(fresh=True)
            return await self._exchange(conn, data)
        except BaseException:
            conn.close()
            self._release(conn)
            raise

    async def _exchange(self, conn: _Connection, data: bytes) -> HTTPResponse:
        conn._reset()
        await conn.send(data)
        while not conn.head_done:
            conn.raise_error()
            await conn.wait(self.read_timeout)
        return HTTPResponse(conn, self.read_timeout)

    async def _acquire(self, fresh: bool = False) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while True:
            if self._closed:
                raise ConnectError("the connection pool is closed")
            idle = self._idle
            while idle and not fresh:
                conn = idle.pop()
                if conn.keep_alive and not conn.closed and time.monotonic() - conn.idle_since < self.keepalive_timeout:
                    return conn, True
                conn.close()
                self._forget(conn)
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(deadline - loop.time()), False
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            left = deadline - loop.time()
            if left <= 0:
                raise PoolTimeout(
                    f"all {self.max_connections} connections are in use and none came free "
                    f"within {self.connect_timeout:g}s"
                )
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                continue
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _addresses(self) -> list[tuple[int, str]]:
        """The host's addresses (family, address), looked up at most every ``DNS_TTL``
        seconds: a burst of new connections makes one lookup, not one each."""
        loop = asyncio.get_running_loop()
        cached = self._dns
        if cached is not None and loop.time() - cached[0] < DNS_TTL:
            return cached[1]
        if self._lookup is None or self._lookup.done():
            self._lookup = asyncio.ensure_future(
                loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            )
        infos = await asyncio.shield(self._lookup)
        addresses = list(dict.fromkeys((family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos))
        if not addresses:
            raise OSError(f"no address for {self.host}")
        self._dns = (loop.time(), addresses)
        return addresses

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                if self._literal:
                    addresses = [(0, self.host)]
                else:
                    addresses = await self._addresses()
                for i, (family, address) in enumerate(addresses):
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Connection(self), address, self.port, family=family,
                            ssl=self._ssl, server_hostname=self.host if self.tls else None,
                        )
                        break
                    except OSError:
                        if i == len(addresses) - 1:
                            self._dns = None  # look the host up again next time
                            raise
        except TimeoutError:
            raise ConnectTimeout(
                f"could not connect to {self.authority} within {self.connect_timeout:g}s"
            ) from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.authority}: {exc}") from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        """``conn`` is free again: idle if it can be reused, else forgotten."""
        if conn.closed or not conn.keep_alive or not conn.body_done or conn.body or self._closed:
            conn.close()
            self._forget(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.keepalive_timeout, self._sweep)
        self._wake_one()

    def _lost(self, conn: _Connection) -> None:
        """``conn``'s transport closed (by either side)."""
        if conn in self._idle:
            self._idle.remove(conn)
            self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        keep = []
        for conn in self._idle:
            if now - conn.idle_since >= self.keepalive_timeout:
                conn.close()
                self._forget(conn)
            else:
                keep.append(conn)
        self._idle[:] = keep
        if keep:
            self._sweeper = asyncio.get_running_loop().call_later(self.keepalive_timeout / 2, self._sweep)

    async def close(self) -> None:
        """Close every idle connection; busy ones close when their answers are done."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            self._forget(conn)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)


__all__ = [
    "ConnectError",
    "ConnectTimeout",
    "Disconnected",
    "HTTPError",
    "HTTPPool",
    "HTTPResponse",
    "PoolTimeout",
    "ProtocolError",
    "ReadTimeout",
]

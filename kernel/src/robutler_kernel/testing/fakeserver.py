"""The server core of the test kit's fake LLM upstreams (:mod:`.fake_openai`, :mod:`.fake_anthropic`).

It speaks the real wire protocol (HTTP/1.1 with keep-alive, JSON, SSE over chunked
transfer encoding) on a real loopback socket, so the code under test runs its real HTTP
client. It is built on asyncio protocols and ``h11`` rather than an ASGI framework: a fake
is also the zero-latency upstream of the benchmark and must never be its bottleneck.

What a fake shares lives here: the connection protocol, the queue of scripted replies, the
recording of requests, delays, paced and hanging streams, injected faults (:data:`FAULTS`),
cancellation counting, the three run modes (a background thread, the current event loop, a
process) and the command line. A subclass (:class:`FakeServer`) answers the routes of one
API in :meth:`FakeServer.route`.

Faults a scripted reply can inject (its ``fault`` field; ``fault_after`` counts stream
events), the same for every fake, so one table of faults (:mod:`.faults`) drives them all:

================  ====================================  ====================================
``fault``         a JSON answer                          a streamed answer
================  ====================================  ====================================
``drop``          the connection is closed once the request is read, before any byte of an
                  answer (an upstream that accepts and then drops the connection)
``drop_mid_body`` the head (with the full                ``fault_after`` events, then the
                  ``content-length``) and half the       connection is closed without the
                  body, then the connection is closed    chunked terminator
``truncate``      a complete answer whose JSON is cut    ``fault_after`` events, then the body
                  in half (``content-length`` matches)   ends cleanly: no finish reason, no
                                                         ``[DONE]`` / ``message_stop``
``stall``         the head and half the body, then       ``fault_after`` events, then silence
                  silence until the peer leaves          until the peer leaves (``hang_after``)
``not_json``      a 200 whose body is an HTML page       the same HTML page instead of events
``bad_sse``       (as ``not_json``)                      ``fault_after`` events, then a
                                                         ``data:`` line that is not JSON, then
                                                         the rest
================  ====================================  ====================================
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import h11
import msgspec

json_encode = msgspec.json.Encoder().encode
json_decode = msgspec.json.Decoder().decode

#: A word and the whitespace after it: how text is split into stream deltas.
WORDS = re.compile(r"\S+\s*")


def count_words(text: str) -> int:
    """The fakes' token count: whitespace-separated words."""
    return len(text.split())


class Scripted(Protocol):
    """What the core reads of a scripted reply (both fakes' reply types have these)."""

    status: int
    headers: dict[str, str]
    delay: float
    chunk_delay: float
    hang_after: int | None
    fault: str | None
    fault_after: int


#: The faults a scripted reply may inject (see the module docstring).
FAULTS = ("drop", "drop_mid_body", "truncate", "stall", "not_json", "bad_sse")

#: The body of the ``not_json`` fault: what a proxy in front of a provider answers.
NOT_JSON_BODY = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n"

#: The event the ``bad_sse`` fault inserts.
BAD_SSE_EVENT = b'data: {"id": "chatcmpl-broken", "choices": [{"delta"\n\n'


def check_fault(fault: str | None) -> None:
    """Raise ``ValueError`` for a ``fault`` that is not one of :data:`FAULTS`."""
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")


R = TypeVar("R", bound=Scripted)
F = TypeVar("F", bound="FakeServer[Any]")


@dataclass
class RecordedRequest:
    """A request the fake received: ``headers`` have lower-case names, ``json`` is the
    decoded body (``None`` when empty or not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


_JSON_HEADERS = b"content-type: application/json\r\n"
_SSE_HEADERS = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


class Connection(asyncio.Protocol):
    """One client connection: h11 parses requests; answers are framed here.

    h11 is used as the parser only: serialising responses through it costs more than
    the rest of the server together, and the framing we need (fixed length or chunked)
    is two lines of code. A fresh parser per request, fed the bytes the previous one
    did not consume, keeps pipelined requests working.

    Answers without delays are written synchronously from ``data_received`` (the fast
    path); delayed and paced answers run as a task, which is cancelled (and counted)
    when the peer closes the socket.
    """

    def __init__(self, fake: FakeServer[Any]) -> None:
        self.fake = fake
        self.parser = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.keep_alive = True
        self.task: asyncio.Task[None] | None = None
        #: The fault of the reply being written (``(fault, fault_after)``), if any.
        self.fault: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.fake.connections_opened += 1
        self.fake._live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fake.connections_closed += 1
        self.fake._live.discard(self)
        self.transport = None
        if self.task is not None and not self.task.done() and not self.fake._closing:
            self.task.cancel()
            self.fake.cancelled += 1
            self.fake.cancelled_event.set()

    def data_received(self, data: bytes) -> None:
        self.parser.receive_data(data)
        if self.task is None:
            self._process()

    def eof_received(self) -> bool | None:
        self.parser.receive_data(b"")
        return None  # close the transport: a peer that stops sending has gone away

    def _process(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            try:
                event = self.parser.next_event()
            except h11.RemoteProtocolError as exc:
                self.keep_alive = False
                self.send_json(400, self.fake.error_body(400, f"bad HTTP request: {exc}"))
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, bytearray()
                self.keep_alive = _keep_alive(event)
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                pending = self.fake._handle(self, self.request, bytes(self.body))
                if pending is not None:
                    self.task = asyncio.ensure_future(pending)
                    self.task.add_done_callback(self._task_done)
                    return
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.task = None
        if task.cancelled() or self.transport is None:
            return
        if task.exception() is not None:  # a bug in the fake: drop the connection, loudly
            self.transport.close()
            raise task.exception()  # type: ignore[misc]
        self._process()

    def _done(self) -> None:
        """The answer is complete: close, or start a new parser for the next request."""
        if self.transport is None:
            return
        if not self.keep_alive:
            self.transport.close()
            return
        rest, closed = self.parser.trailing_data
        self.parser = h11.Connection(h11.SERVER)
        if rest:
            self.parser.receive_data(rest)
        if closed:
            self.parser.receive_data(b"")

    def _head(self, status: int, extra: bytes, headers: dict[str, str] | None) -> bytes:
        lines = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d Status\r\n" % status, extra]
        lines += [f"{k}: {v}\r\n".encode() for k, v in (headers or {}).items()]
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Pending:
        """Write a complete JSON answer (or the injected fault's broken one: a coroutine
        for ``stall``)."""
        if self.transport is None:
            return None
        data = json_encode(payload)
        fault = self.fault[0] if self.fault is not None and status == 200 else None
        content_type = _JSON_HEADERS
        if fault == "truncate":
            data = data[: len(data) // 2]
        elif fault in ("not_json", "bad_sse"):
            data, content_type = NOT_JSON_BODY, b"content-type: text/html\r\n"
        head = self._head(status, content_type + b"content-length: %d\r\n" % len(data), headers)
        if fault in ("drop_mid_body", "stall"):
            self.keep_alive = False
            self.transport.write(head + data[: len(data) // 2])
            if fault == "stall":
                return _forever()
            self.transport.close()
            return None
        self.transport.write(head + data)
        self._done()
        return None

    def drop(self) -> None:
        """Close the connection without answering."""
        if self.transport is not None:
            self.keep_alive = False
            self.transport.close()

    def start_stream(self, headers: dict[str, str]) -> None:
        """Write the head of an SSE answer (chunked transfer encoding)."""
        assert self.transport is not None
        self.transport.write(self._sse_head(headers))

    def send_stream(self, headers: dict[str, str], body: bytes) -> None:
        """Write a complete SSE answer in one write (one chunk plus the terminator)."""
        if self.transport is None:
            return
        self.transport.write(self._sse_head(headers) + _chunk(body) + b"0\r\n\r\n")
        self._done()

    def _sse_head(self, headers: dict[str, str]) -> bytes:
        return self._head(200, _SSE_HEADERS + b"transfer-encoding: chunked\r\n", headers)

    def send_chunk(self, data: bytes, last: bool = False) -> None:
        """Write one chunk of a streamed answer; ``last`` ends the answer."""
        if self.transport is None:
            return
        self.transport.write(_chunk(data) + (b"0\r\n\r\n" if last else b""))
        if last:
            self._done()


async def _until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` until it is true or ``timeout`` seconds have passed; its last value."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return done()


async def _forever() -> None:
    """Hang until the peer leaves (the connection's task is then cancelled)."""
    await asyncio.Event().wait()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _keep_alive(request: h11.Request) -> bool:
    tokens = b",".join(v for k, v in request.headers if k == b"connection").lower()
    if request.http_version == b"1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


#: What :meth:`FakeServer.route` returns: ``None`` once answered, else a coroutine to run.
Pending = Coroutine[Any, Any, None] | None


class FakeServer(Generic[R]):
    """A fake HTTP upstream on ``127.0.0.1``: scripted replies, recording, run modes.

    A subclass sets :attr:`reply_type`, answers requests in :meth:`route` and shapes
    error bodies in :meth:`error_body`.

    :param host: the interface to listen on.
    :param port: the port; 0 picks a free one (see :attr:`port`).
    :param default_reply: the reply when none is queued.

    :ivar port: the port listened on (known once started).
    :ivar default_reply: the reply used when the queue is empty; set its ``delay`` or
        ``chunk_delay`` to slow every answer down.
    :ivar requests: every :class:`RecordedRequest`, in arrival order.
    :ivar record: whether to record requests (off in the benchmark process).
    :ivar replies: the queue of scripted replies; each answered POST consumes one.
    :ivar connections_opened: connections accepted so far.
    :ivar connections_closed: connections closed so far (by either side).
    :ivar cancelled: answers cut short because the peer closed the socket mid-answer.
    :ivar cancelled_event: a ``threading.Event`` set at the first such cancellation.
    """

    #: The scripted reply class (its first field is ``content``).
    reply_type: ClassVar[Callable[..., Any]]
    #: The name of the background thread in thread mode.
    thread_name: ClassVar[str] = "fake-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, default_reply: R) -> None:
        self.host, self.port = host, port
        self.default_reply: R = default_reply
        self.replies: deque[R] = deque()
        self.requests: list[RecordedRequest] = []
        self.connections_opened = self.connections_closed = self.cancelled = 0
        self.cancelled_event = threading.Event()
        self.record = True
        self._closing = False
        self._live: set[Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._ticker: _Ticker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: what a client's ``base_url`` takes."""
        return f"http://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections currently open."""
        return len(self._live)

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request (``IndexError`` when none arrived)."""
        return self.requests[-1]

    def push(self, *replies: R) -> None:
        """Queue replies; each POST consumes the next one."""
        self.replies.extend(replies)

    def add_reply(self, content: str | None = None, *, times: int = 1, **fields: Any) -> R:
        """Queue ``times`` identical replies (see :attr:`reply_type` for ``fields``)."""
        reply: R = self.reply_type(content=content, **fields)
        self.replies.extend([reply] * times)
        return reply

    def next_reply(self) -> R:
        """The next queued reply, else the default one."""
        return self.replies.popleft() if self.replies else self.default_reply

    def reset(self) -> None:
        """Forget queued replies, recorded requests and counters."""
        self.replies.clear()
        self.requests.clear()
        self.connections_opened = self.connections_closed = self.cancelled = 0
        self.cancelled_event.clear()

    def wait_cancelled(self, timeout: float = 5.0) -> bool:
        """Block until an answer was cut short by the peer (thread mode only)."""
        return self.cancelled_event.wait(timeout)

    async def wait_cancelled_async(self, timeout: float = 5.0) -> bool:
        """Await a cancellation without blocking the loop (works in both modes)."""
        return await _until(self.cancelled_event.is_set, timeout)

    async def wait_requests_async(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Await ``count`` recorded requests (the upstream has them) without blocking the
        loop (works in both modes)."""
        return await _until(lambda: len(self.requests) >= count, timeout)

    # -- request handling ----------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        """The body of an error the fake itself answers (bad route, bad JSON...)."""
        return {"error": {"message": message, "type": "invalid_request_error"}}

    def route(self, conn: Connection, method: str, path: str, headers: dict[str, str],
              data: Any) -> Pending:
        """Answer one request (``data`` is the decoded JSON body, or ``None``): write it on
        ``conn`` now and return ``None``, or return a coroutine that writes it later."""
        raise NotImplementedError

    def _handle(self, conn: Connection, request: h11.Request | None, body: bytes) -> Pending:
        """Decode and record one request, then route it."""
        assert request is not None
        method, path = request.method.decode(), request.target.decode().split("?", 1)[0]
        try:
            data = json_decode(body) if body else None
        except msgspec.DecodeError:
            data = None
        headers = {k.decode(): v.decode() for k, v in request.headers}
        if self.record:
            self.requests.append(RecordedRequest(method, path, headers, body, data))
        conn.fault = None  # set by answer() for the reply that has one
        return self.route(conn, method, path, headers, data)

    def answer(self, reply: R, write: Callable[[bool], Pending], *, paced: bool,
               conn: Connection | None = None) -> Pending:
        """Run ``write(paced)`` now, or later when ``reply`` has a ``delay`` or the answer
        is ``paced`` (a stream with ``chunk_delay`` or ``hang_after``). ``conn`` (the
        connection written to) carries the reply's injected ``fault``, if any."""
        if conn is not None:
            conn.fault = (reply.fault, reply.fault_after) if reply.fault else None
            if reply.fault == "drop":
                write = _dropper(conn)
        if reply.delay or paced:
            return self._answer_later(reply, write)
        return write(False)

    async def _answer_later(self, reply: R, write: Callable[[bool], Pending]) -> None:
        if reply.delay:
            await asyncio.sleep(reply.delay if math.isfinite(reply.delay) else 1e9)
        pending = write(True)
        if pending is not None:
            await pending

    @staticmethod
    def is_paced(reply: Scripted) -> bool:
        """Whether a streamed answer of ``reply`` must be written event by event."""
        return bool(reply.chunk_delay) or reply.hang_after is not None or reply.fault == "stall"

    async def pace(self, conn: Connection, headers: dict[str, str], events: list[bytes],
                   reply: R, *, drop_at_end: bool = False) -> None:
        """Write a stream event by event: ``chunk_delay`` apart, hanging after
        ``hang_after`` events until the peer leaves.

        With a ``chunk_delay``, the events after the first are written by the server's
        :class:`_Ticker` (one timer for every paced stream) rather than by a sleep of this
        stream's own: each stream still gets its events ``chunk_delay`` apart on its own
        connection, and thousands of slow streams cost a timer callback per tick instead of a
        task wake-up per event."""
        conn.start_stream(headers)
        hang_after = reply.fault_after if reply.fault == "stall" else reply.hang_after
        if reply.chunk_delay and events:
            stream = _Paced(conn, events, hang_after, drop_at_end, asyncio.get_running_loop().create_future())
            if stream.step():
                if self._ticker is None:
                    self._ticker = _Ticker(asyncio.get_running_loop())
                self._ticker.add(stream, reply.chunk_delay)
            await stream.done  # set after the last event; cancelled when the peer leaves
            return
        for n, event in enumerate(events):
            if hang_after is not None and n >= hang_after:
                await _forever()  # until the peer leaves and we are cancelled
            if n and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            conn.send_chunk(event, last=n == len(events) - 1 and not drop_at_end)
        if drop_at_end:
            conn.drop()

    def send_events(self, conn: Connection, headers: dict[str, str], events: list[bytes],
                    reply: R, paced: bool) -> Pending:
        """Write SSE ``events``: all in one write, or paced (see :meth:`pace`); with the
        reply's injected stream ``fault``, if any."""
        drop_at_end = False
        after = reply.fault_after
        if reply.fault in ("drop_mid_body", "truncate"):
            events, drop_at_end = events[:after], reply.fault == "drop_mid_body"
        elif reply.fault == "bad_sse":
            events = [*events[:after], BAD_SSE_EVENT, *events[after:]]
        elif reply.fault == "not_json":
            return conn.send_json(200, None)  # conn.fault makes it the HTML page
        if not paced:
            if drop_at_end:
                conn.start_stream(headers)
                if events:
                    conn.send_chunk(b"".join(events))
                conn.drop()
                return None
            conn.send_stream(headers, b"".join(events))
            return None
        return self.pace(conn, headers, events, reply, drop_at_end=drop_at_end)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self: F) -> F:
        """Listen on the current event loop; sets :attr:`port` when it was 0."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: Connection(self), self.host, self.port, reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop listening and drop every open connection (hanging answers end)."""
        if self._server is not None:
            self._closing = True  # aborting our own connections is not a peer cancellation
            self._server.close()
            self._server = None
            tasks = [c.task for c in self._live if c.task is not None]
            for conn in list(self._live):
                if conn.transport is not None:
                    conn.transport.abort()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._ticker is not None:
                self._ticker.close()
                self._ticker = None
            self._closing = False

    async def __aenter__(self: F) -> F:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self: F) -> F:
        """Run the server in a daemon thread with its own event loop."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.aclose())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._thread = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} queued={len(self.replies)}>"


class _Paced:
    """A paced stream's state: its connection, its events and the next one to write."""

    __slots__ = ("conn", "done", "drop_at_end", "due", "events", "hang_after", "n")

    def __init__(self, conn: Connection, events: list[bytes], hang_after: int | None, drop_at_end: bool,
                 done: asyncio.Future[None]) -> None:
        self.conn, self.events, self.hang_after, self.drop_at_end, self.done = conn, events, hang_after, drop_at_end, done
        self.n = 0
        self.due = 0.0

    def step(self) -> bool:
        """Write the next event; whether another one is to be written later. After the last
        event ``done`` is set; a stream that hangs (``hang_after``) or whose peer left (the
        connection's task, awaiting ``done``, was cancelled) writes nothing more."""
        if self.done.done() or self.conn.transport is None:
            return False
        n = self.n
        if self.hang_after is not None and n >= self.hang_after:
            return False  # hang until the peer leaves
        self.n = n + 1
        if n < len(self.events) - 1:
            self.conn.send_chunk(self.events[n])
            return True
        # The stream's task must finish before the connection's end is seen (a close after
        # the last event is not a peer leaving mid-answer): its wake-up is queued first.
        self.done.set_result(None)
        self.conn.send_chunk(self.events[n], last=not self.drop_at_end)
        if self.drop_at_end:
            self.conn.drop()
        return False


class _Ticker:
    """One timer for all paced streams of a server: each tick writes the next event of every
    stream that is due, then sleeps until the next one is (at least :attr:`GRANULARITY`).

    Streams with the same delay are due in the order they were queued, so a queue per delay
    (a deque) keeps them sorted without a heap. A stream's next event is due ``delay`` after
    the previous one was due (no drift when a tick is late) and never less than ``delay -
    GRANULARITY`` after it was written; an event is never written before it is due.
    """

    #: Seconds between ticks at the least; an event is late by up to about this much.
    GRANULARITY = 0.005

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queues: dict[float, deque[_Paced]] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.at = math.inf

    def add(self, stream: _Paced, delay: float) -> None:
        """Write ``stream``'s next events ``delay`` seconds apart, the first ``delay`` from now."""
        stream.due = self.loop.time() + delay
        queue = self.queues.get(delay)
        if queue is None:
            queue = self.queues[delay] = deque()
        queue.append(stream)
        self._schedule(stream.due)

    def _schedule(self, at: float) -> None:
        if at < self.at:
            if self.handle is not None:
                self.handle.cancel()
            self.at, self.handle = at, self.loop.call_at(at, self._tick)

    def _tick(self) -> None:
        self.handle, self.at = None, math.inf
        now = self.loop.time()
        soonest = math.inf
        for delay, queue in self.queues.items():
            floor = now + delay - self.GRANULARITY
            while queue and queue[0].due <= now:
                stream = queue.popleft()
                if stream.step():
                    due = stream.due + delay
                    stream.due = due if due > floor else floor
                    queue.append(stream)
            if queue and queue[0].due < soonest:
                soonest = queue[0].due
        if soonest < math.inf:
            self._schedule(max(soonest, now + self.GRANULARITY))

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle, self.at = None, math.inf
        self.queues.clear()


def _dropper(conn: Connection) -> Callable[[bool], Pending]:
    def drop(_paced: bool) -> Pending:
        conn.drop()
        return None
    return drop


def serve_main(argv: list[str] | None, *, prog: str, description: str,
               build: Callable[[argparse.Namespace], FakeServer[Any]]) -> None:
    """A fake's command line: serve until interrupted, printing ``listening on <base_url>``
    once ready. ``build`` makes the fake from the parsed options (``host``, ``port``,
    ``model``, ``reply``, ``delay``, ``chunk_delay``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--reply", default=None, help="fixed reply text (default: echo)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before first byte")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args(argv)

    async def serve() -> None:
        fake = build(args)
        fake.record = False  # a long benchmark must not grow memory
        await fake.start()
        print(f"listening on {fake.base_url}", flush=True)
        await asyncio.Event().wait()

    from ..eventloop import run  # uvloop when installed: the process must not be the bottleneck

    try:
        run(serve())
    except KeyboardInterrupt:
        pass


__all__ = ["FAULTS", "WORDS", "Connection", "FakeServer", "Pending", "RecordedRequest", "Scripted",
           "check_fault", "count_words", "json_decode", "json_encode", "serve_main"]

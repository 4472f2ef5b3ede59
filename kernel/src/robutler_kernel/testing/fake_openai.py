"""A fake OpenAI-compatible LLM server for tests and benchmarks.

It speaks the real wire protocol (HTTP/1.1 with keep-alive, JSON, SSE over chunked
transfer encoding) on a real loopback socket, so the code under test runs its real HTTP
client. It is built on asyncio protocols and ``h11`` rather than an ASGI framework: it is
also the zero-latency upstream of the benchmark and must never be its bottleneck.

Three ways to run it::

    with FakeOpenAI() as fake:            # background thread with its own event loop
        client = OpenAI(base_url=fake.base_url, api_key="x")

    async with FakeOpenAI() as fake:      # on the current event loop
        ...

    python -m robutler_kernel.testing.fake_openai --port 8001   # a process, for benchmarks

Every POST consumes the next scripted :class:`FakeReply` (see :meth:`FakeOpenAI.add_reply`
and :meth:`FakeOpenAI.add_error`); with none queued, chat completions echo the last user
message. Every request is recorded in :attr:`FakeOpenAI.requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import math
import re
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import h11
import msgspec

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode
_WORDS = re.compile(r"\S+\s*")
_ids = itertools.count(1)


@dataclass
class FakeReply:
    """One scripted answer. Fields left ``None`` fall back to the echo defaults.

    :ivar content: the assistant text (``None``: echo the last user message, or no text
        when ``tool_calls`` are given).
    :ivar tool_calls: ``[{"name": ..., "arguments": str | dict, "id": optional}]``.
    :ivar finish_reason: defaults to ``"tool_calls"`` with tool calls, else ``"stop"``.
    :ivar usage: ``{"prompt_tokens": .., "completion_tokens": ..}``; default: word counts.
    :ivar model: the model named in the answer; default: the requested model.
    :ivar chunks: the text deltas of a stream; default: the content split after words.
    :ivar status: HTTP status; anything but 200 sends ``error`` as an OpenAI error body.
    :ivar error: the ``{"message", "type", "param", "code"}`` of an error reply.
    :ivar headers: extra response headers (``Retry-After``...).
    :ivar delay: seconds before the first byte (``math.inf`` hangs until the peer leaves).
    :ivar chunk_delay: seconds between stream chunks.
    :ivar hang_after: a stream stops after this many chunks and hangs until the peer leaves.
    """

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    model: str | None = None
    chunks: list[str] | None = None
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    hang_after: int | None = None


@dataclass
class RecordedRequest:
    """A request the fake received: ``headers`` have lower-case names, ``json`` is the
    decoded body (``None`` when empty or not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


def _words(text: str) -> int:
    return len(text.split())


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _echo(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message)
    return ""


def embed_text(text: str, dimensions: int = 8) -> list[float]:
    """The deterministic unit vector the fake returns for ``text``."""
    digest = b""
    counter = 0
    while len(digest) < dimensions * 4:
        digest += hashlib.blake2b(f"{counter}:{text}".encode(), digest_size=64).digest()
        counter += 1
    ints = struct.unpack(f"<{dimensions}i", digest[: dimensions * 4])
    norm = math.sqrt(sum(i * i for i in ints)) or 1.0
    return [i / norm for i in ints]


class _Answer:
    """A reply resolved against one request: everything needed to write it."""

    __slots__ = ("content", "finish", "model", "reply", "tool_calls", "usage")

    def __init__(self, reply: FakeReply, body: dict[str, Any], default_model: str) -> None:
        self.reply = reply
        calls: list[dict[str, Any]] = [
            {
                "id": c.get("id") or f"call_{next(_ids)}",
                "type": "function",
                "function": {
                    "name": c["name"],
                    "arguments": a if isinstance(a := c.get("arguments", ""), str) else
                    _json_encode(a).decode(),
                },
            }
            for c in reply.tool_calls or ()
        ]
        content = reply.content
        if content is None and not calls:
            content = _echo(body)
        self.content: str | None = content
        self.tool_calls = calls
        self.finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        self.model = reply.model or body.get("model") or default_model
        usage: dict[str, int]
        if reply.usage is not None:
            usage = dict(reply.usage)
        else:
            prompt = sum(_words(_message_text(m)) for m in body.get("messages") or ())
            done = _words(content or "") + sum(_words(c["function"]["arguments"]) for c in calls)
            usage = {"prompt_tokens": max(prompt, 1), "completion_tokens": max(done, 1)}
        usage.setdefault("total_tokens", usage.get("prompt_tokens", 0) +
                         usage.get("completion_tokens", 0))
        self.usage = usage

    def completion(self, cid: str, created: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return {
            "id": cid, "object": "chat.completion", "created": created, "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish,
                         "logprobs": None}],
            "usage": self.usage,
        }

    def chunks(self, cid: str, created: int, include_usage: bool) -> list[bytes]:
        """Every SSE event of the stream, ``data: [DONE]`` included."""
        head = {"id": cid, "object": "chat.completion.chunk", "created": created,
                "model": self.model}
        if include_usage:
            head["usage"] = None
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        text = self.content or ""
        pieces = self.reply.chunks if self.reply.chunks is not None else _WORDS.findall(text)
        deltas += [{"content": piece} for piece in pieces]
        for index, call in enumerate(self.tool_calls):
            fn = call["function"]
            deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                           "function": {"name": fn["name"], "arguments": ""}}]})
            for part in _WORDS.findall(fn["arguments"]) or ():
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        events = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
                  for d in deltas]
        events.append({**head, "choices": [{"index": 0, "delta": {},
                                            "finish_reason": self.finish}]})
        if include_usage:
            events.append({**head, "choices": [], "usage": self.usage})
        return [b"data: " + _json_encode(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


_JSON_HEADERS = b"content-type: application/json\r\n"
_SSE_HEADERS = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


class _Connection(asyncio.Protocol):
    """One client connection: h11 parses requests; answers are framed here.

    h11 is used as the parser only: serialising responses through it costs more than
    the rest of the server together, and the framing we need (fixed length or chunked)
    is two lines of code. A fresh parser per request, fed the bytes the previous one
    did not consume, keeps pipelined requests working.

    Answers without delays are written synchronously from ``data_received`` (the fast
    path); delayed and paced answers run as a task, which is cancelled (and counted)
    when the peer closes the socket.
    """

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.parser = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.keep_alive = True
        self.task: asyncio.Task[None] | None = None

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
                self.send_json(400, {"error": {"message": f"bad HTTP request: {exc}",
                                               "type": "invalid_request_error"}})
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

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Write a complete JSON answer."""
        if self.transport is None:
            return
        data = _json_encode(payload)
        head = self._head(status, _JSON_HEADERS + b"content-length: %d\r\n" % len(data), headers)
        self.transport.write(head + data)
        self._done()

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


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _keep_alive(request: h11.Request) -> bool:
    tokens = b",".join(v for k, v in request.headers if k == b"connection").lower()
    if request.http_version == b"1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


class FakeOpenAI:
    """A fake OpenAI-compatible server on ``127.0.0.1``.

    :param host: the interface to listen on.
    :param port: the port; 0 picks a free one (see :attr:`port`).
    :param model: the model named in answers when a request names none, and listed by
        ``GET /v1/models`` (with :attr:`models`).
    :param dimensions: the length of embedding vectors (a request's ``dimensions`` wins).
    :param default_reply: the reply when none is queued (default: echo, no delay).

    :ivar port: the port listened on (known once started).
    :ivar models: the ids ``GET /v1/models`` lists (``[model]``; append to it).
    :ivar default_reply: the :class:`FakeReply` used when the queue is empty; set its
        ``delay`` or ``chunk_delay`` to slow every answer down.
    :ivar requests: every :class:`RecordedRequest`, in arrival order.
    :ivar record: whether to record requests (off in the benchmark process).
    :ivar replies: the queue of scripted replies; each POST consumes one.
    :ivar connections_opened: connections accepted so far.
    :ivar connections_closed: connections closed so far (by either side).
    :ivar cancelled: answers cut short because the peer closed the socket mid-answer.
    :ivar cancelled_event: a ``threading.Event`` set at the first such cancellation.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, model: str = "fake-model",
                 dimensions: int = 8, default_reply: FakeReply | None = None) -> None:
        self.host, self.port, self.model, self.dimensions = host, port, model, dimensions
        self.models: list[str] = [model]
        self.default_reply = default_reply or FakeReply()
        self.replies: deque[FakeReply] = deque()
        self.requests: list[RecordedRequest] = []
        self.connections_opened = self.connections_closed = self.cancelled = 0
        self.cancelled_event = threading.Event()
        self.record = True
        self._closing = False
        self._live: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what an OpenAI client's ``base_url`` takes."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def open_connections(self) -> int:
        """Connections currently open."""
        return len(self._live)

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request (``IndexError`` when none arrived)."""
        return self.requests[-1]

    def push(self, *replies: FakeReply) -> None:
        """Queue replies; each POST consumes the next one."""
        self.replies.extend(replies)

    def add_reply(self, content: str | None = None, *, times: int = 1, **fields: Any) -> FakeReply:
        """Queue ``times`` identical replies (see :class:`FakeReply` for ``fields``)."""
        reply = FakeReply(content=content, **fields)
        self.replies.extend([reply] * times)
        return reply

    def add_error(self, status: int, message: str = "injected error", *, type: str = "api_error",
                  code: str | None = None, param: str | None = None,
                  retry_after: float | None = None, headers: dict[str, str] | None = None,
                  times: int = 1, delay: float = 0.0) -> FakeReply:
        """Queue ``times`` error replies: ``status`` with an OpenAI error body (and a
        ``Retry-After`` header when ``retry_after`` is given)."""
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["retry-after"] = f"{retry_after:g}"
        error = {"message": message, "type": type, "param": param, "code": code}
        return self.add_reply(status=status, error=error, headers=hdrs, times=times, delay=delay)

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
        deadline = time.monotonic() + timeout
        while not self.cancelled_event.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return self.cancelled_event.is_set()

    # -- request handling ----------------------------------------------------------------

    def _handle(self, conn: _Connection, request: h11.Request | None, body: bytes) -> Any:
        """Answer one request; returns a coroutine when the answer must wait."""
        assert request is not None
        method, path = request.method.decode(), request.target.decode().split("?", 1)[0]
        try:
            data = _json_decode(body) if body else None
        except msgspec.DecodeError:
            data = None
        if self.record:
            headers = {k.decode(): v.decode() for k, v in request.headers}
            self.requests.append(RecordedRequest(method, path, headers, body, data))
        if method == "GET" and path.endswith("/models"):
            now = int(time.time())
            return conn.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": now, "owned_by": "fake"}
                for m in self.models]})
        kind = ("chat" if path.endswith("/chat/completions") else
                "embed" if path.endswith("/embeddings") else None)
        if method != "POST" or kind is None:
            return conn.send_json(404, {"error": {"message": f"no route {method} {path}",
                                                    "type": "invalid_request_error"}})
        if not isinstance(data, dict):
            return conn.send_json(400, {"error": {"message": "body must be a JSON object",
                                                    "type": "invalid_request_error"}})
        reply = self.replies.popleft() if self.replies else self.default_reply
        if reply.delay or (kind == "chat" and data.get("stream") and
                           (reply.chunk_delay or reply.hang_after is not None)):
            return self._answer_later(conn, kind, reply, data)
        self._answer(conn, kind, reply, data)
        return None

    async def _answer_later(self, conn: _Connection, kind: str, reply: FakeReply,
                            data: dict[str, Any]) -> None:
        if reply.delay:
            await asyncio.sleep(reply.delay if math.isfinite(reply.delay) else 1e9)
        pending = self._answer(conn, kind, reply, data, paced=True)
        if pending is not None:
            await pending

    def _answer(self, conn: _Connection, kind: str, reply: FakeReply, data: dict[str, Any],
                paced: bool = False) -> Any:
        headers = {"x-request-id": f"req_{next(_ids)}", **reply.headers}
        if reply.status != 200:
            error = reply.error or {"message": "injected error", "type": "api_error"}
            return conn.send_json(reply.status, {"error": error}, headers)
        if kind == "embed":
            return conn.send_json(200, self._embeddings(data), headers)
        answer = _Answer(reply, data, self.model)
        cid, created = f"chatcmpl-fake{next(_ids)}", int(time.time())
        if not data.get("stream"):
            return conn.send_json(200, answer.completion(cid, created), headers)
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        events = answer.chunks(cid, created, include_usage)
        if not paced:  # one write: the whole stream as a single chunk
            conn.send_stream(headers, b"".join(events))
            return None
        return self._pace(conn, headers, events, reply)

    async def _pace(self, conn: _Connection, headers: dict[str, str], events: list[bytes],
                    reply: FakeReply) -> None:
        conn.start_stream(headers)
        for n, event in enumerate(events):
            if reply.hang_after is not None and n >= reply.hang_after:
                await asyncio.Event().wait()  # until the peer leaves and we are cancelled
            if n and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            conn.send_chunk(event, last=n == len(events) - 1)

    def _embeddings(self, data: dict[str, Any]) -> dict[str, Any]:
        raw = data.get("input", "")
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
        dims = int(data.get("dimensions") or self.dimensions)
        rows = []
        for index, text in enumerate(texts):
            vector: Any = embed_text(text, dims)
            if data.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            rows.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(_words(t) for t in texts)
        return {"object": "list", "data": rows, "model": data.get("model") or self.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> FakeOpenAI:
        """Listen on the current event loop; sets :attr:`port` when it was 0."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Connection(self), self.host, self.port, reuse_address=True, backlog=1024)
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
            self._closing = False

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> FakeOpenAI:
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

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
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
        return f"<FakeOpenAI {self.base_url} queued={len(self.replies)}>"


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; prints ``listening on <base_url>`` once ready."""
    parser = argparse.ArgumentParser(prog="python -m robutler_kernel.testing.fake_openai",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--reply", default=None, help="fixed reply text (default: echo)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before first byte")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args(argv)

    async def serve() -> None:
        fake = FakeOpenAI(args.host, args.port, model=args.model, default_reply=FakeReply(
            content=args.reply, delay=args.delay, chunk_delay=args.chunk_delay))
        fake.record = False  # a long benchmark must not grow memory
        await fake.start()
        print(f"listening on {fake.base_url}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

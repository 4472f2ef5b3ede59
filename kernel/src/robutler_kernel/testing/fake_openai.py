"""A fake OpenAI-compatible LLM server for tests and benchmarks.

It speaks the real wire protocol (HTTP/1.1 with keep-alive, JSON, SSE over chunked
transfer encoding) on a real loopback socket, so the code under test runs its real HTTP
client. The server itself (asyncio + ``h11``, run modes, reply queue, recording) is the
shared core in :mod:`.fakeserver`; this module answers OpenAI's routes. It is also the
zero-latency upstream of the benchmark and must never be its bottleneck.

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
import base64
import hashlib
import itertools
import math
import struct
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .fakeserver import WORDS as _WORDS
from .fakeserver import Connection, FakeServer, Pending, RecordedRequest, check_fault, serve_main
from .fakeserver import count_words as _words
from .fakeserver import json_encode as _json_encode

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
    :ivar fault: a fault to inject instead of a well-formed answer: ``drop``,
        ``drop_mid_body``, ``truncate``, ``stall``, ``not_json`` or ``bad_sse`` (see
        :mod:`robutler_kernel.testing.fakeserver`); applies to 200 answers (``drop`` to all).
    :ivar fault_after: the stream events sent before the fault strikes.
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
    fault: str | None = None
    fault_after: int = 0

    def __post_init__(self) -> None:
        check_fault(self.fault)


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


class FakeOpenAI(FakeServer[FakeReply]):
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

    reply_type: ClassVar[type[FakeReply]] = FakeReply
    thread_name: ClassVar[str] = "fake-openai"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, model: str = "fake-model",
                 dimensions: int = 8, default_reply: FakeReply | None = None) -> None:
        super().__init__(host, port, default_reply=default_reply or FakeReply())
        self.model, self.dimensions = model, dimensions
        self.models: list[str] = [model]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what an OpenAI client's ``base_url`` takes."""
        return f"http://{self.host}:{self.port}/v1"

    def add_reply(self, content: str | None = None, *, times: int = 1, **fields: Any) -> FakeReply:
        """Queue ``times`` identical replies (see :class:`FakeReply` for ``fields``)."""
        return super().add_reply(content, times=times, **fields)

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

    # -- request handling ----------------------------------------------------------------

    def route(self, conn: Connection, method: str, path: str, headers: dict[str, str],
              data: Any) -> Pending:
        """``GET .../models``, ``POST .../chat/completions`` and ``POST .../embeddings``."""
        if method == "GET" and path.endswith("/models"):
            now = int(time.time())
            conn.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": now, "owned_by": "fake"}
                for m in self.models]})
            return None
        kind = ("chat" if path.endswith("/chat/completions") else
                "embed" if path.endswith("/embeddings") else None)
        if method != "POST" or kind is None:
            conn.send_json(404, self.error_body(404, f"no route {method} {path}"))
            return None
        if not isinstance(data, dict):
            conn.send_json(400, self.error_body(400, "body must be a JSON object"))
            return None
        reply = self.next_reply()
        paced = kind == "chat" and bool(data.get("stream")) and self.is_paced(reply)
        return self.answer(reply, lambda later: self._answer(conn, kind, reply, data, later),
                           paced=paced, conn=conn)

    def _answer(self, conn: Connection, kind: str, reply: FakeReply, data: dict[str, Any],
                paced: bool) -> Pending:
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
        return self.send_events(conn, headers, events, reply, paced)

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


def _build(args: argparse.Namespace) -> FakeOpenAI:
    return FakeOpenAI(args.host, args.port, model=args.model, default_reply=FakeReply(
        content=args.reply, delay=args.delay, chunk_delay=args.chunk_delay))


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; prints ``listening on <base_url>`` once ready."""
    serve_main(argv, prog="python -m robutler_kernel.testing.fake_openai",
               description=(__doc__ or "").split("\n\n")[0], build=_build)


__all__ = ["FakeOpenAI", "FakeReply", "RecordedRequest", "embed_text", "main"]


if __name__ == "__main__":
    main()

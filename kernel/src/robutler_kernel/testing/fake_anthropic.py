"""A fake Anthropic Messages API server for tests and benchmarks.

``POST /v1/messages`` answers in Anthropic's real wire format: a ``message`` JSON object,
or with ``"stream": true`` server-sent events with ``event:`` and ``data:`` lines
(``message_start``, ``ping``, ``content_block_start`` / ``_delta`` / ``_stop``,
``message_delta``, ``message_stop``, and ``error``). It checks what the real API checks
first: an API key (``x-api-key``, or ``Authorization: Bearer`` as the 2.x SDKs send it)
and the ``anthropic-version`` header, ``model``, ``max_tokens`` and ``messages``, roles
that alternate, that every ``tool_use`` is answered by a ``tool_result`` in the next
turn, and (from version 2026-10-21, which the 2.x SDKs send) that no sampling parameter
(``temperature``, ``top_p``, ``top_k``) is sent. Errors have Anthropic's shape:
``{"type": "error", "error": {"type": "overloaded_error", "message": ...}}``.

The server core (asyncio + ``h11``, run modes, reply queue, recording) is shared with
:mod:`.fake_openai` (see :mod:`.fakeserver`)::

    with FakeAnthropic() as fake:            # background thread with its own event loop
        client = Anthropic(base_url=fake.base_url, api_key="x")

    async with FakeAnthropic() as fake:      # on the current event loop
        ...

    python -m robutler_kernel.testing.fake_anthropic --port 8002   # a process, for benchmarks

Every ``POST /v1/messages`` that passes the checks consumes the next scripted
:class:`AnthropicReply` (:meth:`FakeAnthropic.add_reply`, :meth:`FakeAnthropic.add_error`);
with none queued it echoes the text of the last user turn.
"""

from __future__ import annotations

import argparse
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .fakeserver import Connection, FakeServer, Pending, RecordedRequest, check_fault, json_decode, serve_main
from .fakeserver import count_words as _words
from .fakeserver import json_encode as _json_encode

_ids = itertools.count(1)

#: How text is split into ``text_delta`` pieces: a word with the whitespace around it, so
#: that the pieces always join back into the text (whitespace-only text included).
TEXT_PIECES = re.compile(r"\s*\S+\s*|\s+")

#: Characters per ``input_json_delta`` piece of a streamed tool input.
JSON_PIECE = 8

#: The first API version that refuses sampling parameters (even at their defaults).
NO_SAMPLING_VERSION = "2026-10-21"

#: What that version refuses: ``"<name>: Extra inputs are not permitted"``.
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")

#: The error ``type`` Anthropic sends with each status.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


@dataclass
class AnthropicReply:
    """One scripted answer. Fields left ``None`` fall back to the echo defaults.

    :ivar content: the assistant text (``None``: echo the last user turn's text, or no
        text block when ``tool_uses`` are given).
    :ivar tool_uses: ``[{"name": ..., "input": dict | JSON str, "id": optional}]``, sent as
        ``tool_use`` blocks after the text.
    :ivar thinking: a ``thinking`` block sent before everything else, if any.
    :ivar stop_reason: defaults to ``"tool_use"`` with tool uses, else ``"end_turn"``.
    :ivar stop_sequence: the ``stop_sequence`` reported (with ``stop_reason="stop_sequence"``).
    :ivar usage: ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens``,
        ``cache_creation_input_tokens`` (missing ones are word counts, or 0 for the cache).
    :ivar model: the model named in the answer; default: the requested model.
    :ivar chunks: the ``text_delta`` pieces of a stream; default: the text split after words.
    :ivar status: HTTP status; anything but 200 sends ``error`` in Anthropic's error body.
    :ivar error: ``{"type": ..., "message": ...}`` of an error reply or error event.
    :ivar headers: extra response headers (``retry-after``...).
    :ivar delay: seconds before the first byte (``math.inf`` hangs until the peer leaves).
    :ivar chunk_delay: seconds between stream events.
    :ivar hang_after: a stream stops after this many events and hangs until the peer leaves.
    :ivar fault: a fault to inject instead of a well-formed answer: ``drop``,
        ``drop_mid_body``, ``truncate``, ``stall``, ``not_json`` or ``bad_sse`` (see
        :mod:`robutler_kernel.testing.fakeserver`); applies to 200 answers (``drop`` to all).
    :ivar fault_after: the stream events sent before the fault strikes.
    :ivar error_after: a stream sends this many events, then an ``error`` event
        (``error``, default ``overloaded_error``), and ends.
    """

    content: str | None = None
    tool_uses: list[dict[str, Any]] | None = None
    thinking: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
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
    error_after: int | None = None


def _block_text(content: Any) -> str:
    """The text of a message's ``content`` (a string or blocks; tool results skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content
                       if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _echo(body: dict[str, Any]) -> str:
    """The text of the last user turn that has text."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _block_text(message.get("content"))
            if text:
                return text
    return ""


def _prompt_words(body: dict[str, Any]) -> int:
    words = _words(_block_text(body.get("system")))
    return words + sum(_words(_block_text(m.get("content"))) for m in body.get("messages") or ()
                       if isinstance(m, dict))


def _sse(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + _json_encode(event) + b"\n\n"


class AnthropicAnswer:
    """A reply resolved against one request: the ``message`` JSON and the stream events.

    Public so that tests can render a scripted reply both ways without HTTP.

    :param reply: the scripted reply.
    :param body: the request body (for the echo, the model and default usage).
    :param default_model: the model named when neither the reply nor the body names one.
    """

    def __init__(self, reply: AnthropicReply, body: dict[str, Any],
                 default_model: str = "fake-model") -> None:
        self.reply = reply
        self.tool_uses: list[dict[str, Any]] = []
        for use in reply.tool_uses or ():
            raw = use.get("input", {})
            self.tool_uses.append({
                "type": "tool_use", "id": use.get("id") or f"toolu_fake{next(_ids)}",
                "name": use["name"],
                "input": _json_decode_object(raw) if isinstance(raw, str) else raw,
            })
        text = reply.content
        if text is None and not self.tool_uses:
            text = _echo(body)
        self.text = text
        self.stop_reason = reply.stop_reason or ("tool_use" if self.tool_uses else "end_turn")
        self.model = reply.model or body.get("model") or default_model
        usage = dict(reply.usage or {})
        if "input_tokens" not in usage:
            usage["input_tokens"] = max(_prompt_words(body), 1)
        if "output_tokens" not in usage:
            done = _words(text or "") + sum(_words(_json_encode(u["input"]).decode())
                                            for u in self.tool_uses)
            usage["output_tokens"] = max(done, 1)
        usage.setdefault("cache_creation_input_tokens", 0)
        usage.setdefault("cache_read_input_tokens", 0)
        self.usage = usage

    def blocks(self) -> list[dict[str, Any]]:
        """The ``content`` blocks of the answer, in order."""
        blocks: list[dict[str, Any]] = []
        if self.reply.thinking is not None:
            blocks.append({"type": "thinking", "thinking": self.reply.thinking,
                           "signature": "fake-signature"})
        if self.text is not None and (self.text or not self.tool_uses):
            blocks.append({"type": "text", "text": self.text})
        return blocks + self.tool_uses

    def message(self, mid: str) -> dict[str, Any]:
        """The non-streamed answer: a ``message`` object."""
        return {"id": mid, "type": "message", "role": "assistant", "model": self.model,
                "content": self.blocks(), "stop_reason": self.stop_reason,
                "stop_sequence": self.reply.stop_sequence, "usage": self.usage}

    def events(self, mid: str) -> list[bytes]:
        """Every SSE event of the streamed answer (``event:`` and ``data:`` lines)."""
        start_usage = {**self.usage, "output_tokens": 1}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": start_usage}},
            {"type": "ping"},
        ]
        for index, block in enumerate(self.blocks()):
            events += self._block_events(index, block)
        events.append({"type": "message_delta",
                       "delta": {"stop_reason": self.stop_reason,
                                 "stop_sequence": self.reply.stop_sequence},
                       "usage": {"output_tokens": self.usage["output_tokens"]}})
        events.append({"type": "message_stop"})
        wire = [_sse(e) for e in events]
        if self.reply.error_after is not None:
            error = self.reply.error or {"type": "overloaded_error", "message": "Overloaded"}
            wire = [*wire[:self.reply.error_after], _sse({"type": "error", "error": error})]
        return wire

    def _block_events(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block["type"]
        deltas: list[dict[str, Any]]
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            pieces = self.reply.chunks if self.reply.chunks is not None else TEXT_PIECES.findall(block["text"])
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in TEXT_PIECES.findall(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = _json_encode(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": raw[i:i + JSON_PIECE]}
                       for i in range(0, len(raw), JSON_PIECE)]
        return ([{"type": "content_block_start", "index": index, "content_block": start}]
                + [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
                + [{"type": "content_block_stop", "index": index}])


def _json_decode_object(text: str) -> Any:
    return json_decode(text.encode()) if text else {}


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error body."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def check_conversation(body: dict[str, Any], version: str = NO_SAMPLING_VERSION) -> str | None:
    """What the real API would refuse in ``body`` (as its message), or ``None``.

    :param body: the request body.
    :param version: the ``anthropic-version`` header (from 2026-10-21 on, ``temperature``,
        ``top_p`` and ``top_k`` are refused).
    """
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return f"{key}: Field required"
    if version >= NO_SAMPLING_VERSION:
        for key in SAMPLING_PARAMS:
            if key in body:
                return f"{key}: Extra inputs are not permitted"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous: str | None = None
    pending: list[Any] = []  # tool_use ids the next turn must answer
    for n, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{n}.role: Input should be 'user' or 'assistant'"
        if role == previous:
            return f"messages.{n}: roles must alternate between \"user\" and \"assistant\""
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        results = {b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"}
        missing = [i for i in pending if i not in results]
        if missing:
            return (f"messages.{n}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(map(str, missing))}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message.")
        unexpected = results - set(pending)
        if unexpected:
            return (f"messages.{n}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{', '.join(sorted(map(str, unexpected)))}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message.")
        pending = [b.get("id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        previous = role
    if pending:
        return "the last message has `tool_use` blocks; a `tool_result` turn must follow them"
    return None


class FakeAnthropic(FakeServer[AnthropicReply]):
    """A fake Anthropic Messages API on ``127.0.0.1``.

    :param host: the interface to listen on.
    :param port: the port; 0 picks a free one (see :attr:`port`).
    :param model: the model named in answers when a request names none, and listed by
        ``GET /v1/models``.
    :param api_key: the only key accepted (401 for any other); ``None`` accepts any key,
        but one must be sent.
    :param default_reply: the reply when none is queued (default: echo, no delay).

    :ivar api_key: the key required, or ``None`` for any.
    :ivar check_conversation: whether bodies are checked as the real API does (alternating
        roles, tool results after tool uses, sampling parameters by version); on by default.
    :ivar requests: every :class:`RecordedRequest`, in arrival order (also refused ones).

    The rest (``replies``, ``default_reply``, ``record``, the connection counters,
    ``cancelled`` and ``cancelled_event``) is documented on :class:`FakeServer`.
    """

    reply_type: ClassVar[type[AnthropicReply]] = AnthropicReply
    thread_name: ClassVar[str] = "fake-anthropic"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, model: str = "fake-model",
                 api_key: str | None = None, default_reply: AnthropicReply | None = None) -> None:
        super().__init__(host, port, default_reply=default_reply or AnthropicReply())
        self.model = model
        self.api_key = api_key
        self.check_conversation = True

    def add_reply(self, content: str | None = None, *, times: int = 1, **fields: Any) -> AnthropicReply:
        """Queue ``times`` identical replies (see :class:`AnthropicReply` for ``fields``)."""
        return super().add_reply(content, times=times, **fields)

    def add_error(self, status: int, message: str = "injected error", *, type: str | None = None,
                  retry_after: float | None = None, headers: dict[str, str] | None = None,
                  times: int = 1, delay: float = 0.0) -> AnthropicReply:
        """Queue ``times`` error replies: ``status`` with Anthropic's error body, whose
        ``type`` defaults to the one Anthropic sends with ``status`` (``overloaded_error``
        for 529...); a ``retry-after`` header when ``retry_after`` is given."""
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["retry-after"] = f"{retry_after:g}"
        error = {"type": type or ERROR_TYPES.get(status, "api_error"), "message": message}
        return self.add_reply(status=status, error=error, headers=hdrs, times=times, delay=delay)

    def add_stream_error(self, after: int, message: str = "Overloaded", *,
                         type: str = "overloaded_error", **fields: Any) -> AnthropicReply:
        """Queue a streamed reply that sends ``after`` events, then an ``error`` event."""
        return self.add_reply(error_after=after, error={"type": type, "message": message}, **fields)

    # -- request handling ----------------------------------------------------------------

    def error_body(self, status: int, message: str) -> Any:
        """Anthropic's error body, typed by ``status``."""
        return error_body(ERROR_TYPES.get(status, "api_error"), message)

    def _refuse(self, conn: Connection, status: int, message: str) -> None:
        conn.send_json(status, self.error_body(status, message), {"request-id": f"req_fake{next(_ids)}"})

    def _auth_problem(self, headers: dict[str, str]) -> str | None:
        key = headers.get("x-api-key")
        bearer = headers.get("authorization", "")
        if key is None and bearer.lower().startswith("bearer "):
            key = bearer[7:]
        if not key:
            return "x-api-key header is required"
        if self.api_key is not None and key != self.api_key:
            return "invalid x-api-key"
        return None

    def route(self, conn: Connection, method: str, path: str, headers: dict[str, str],
              data: Any) -> Pending:
        """``POST /v1/messages`` (and ``GET /v1/models``), after the API's header checks."""
        known = (method, path) in {("POST", "/v1/messages"), ("GET", "/v1/models")}
        if not known:
            self._refuse(conn, 404, f"no route {method} {path}")
            return None
        problem = self._auth_problem(headers)
        if problem is not None:
            self._refuse(conn, 401, problem)
            return None
        if not headers.get("anthropic-version"):
            self._refuse(conn, 400, "anthropic-version: header is required")
            return None
        if method == "GET":
            conn.send_json(200, {"data": [{"type": "model", "id": self.model, "display_name": self.model,
                                           "created_at": "2025-01-01T00:00:00Z"}],
                                 "has_more": False, "first_id": self.model, "last_id": self.model})
            return None
        if not isinstance(data, dict):
            self._refuse(conn, 400, "body must be a JSON object")
            return None
        version = headers["anthropic-version"]
        problem = check_conversation(data, version) if self.check_conversation else None
        if problem is not None:
            self._refuse(conn, 400, problem)
            return None
        reply = self.next_reply()
        paced = bool(data.get("stream")) and self.is_paced(reply)
        return self.answer(reply, lambda later: self._answer(conn, reply, data, later), paced=paced,
                           conn=conn)

    def _answer(self, conn: Connection, reply: AnthropicReply, data: dict[str, Any],
                paced: bool) -> Pending:
        headers = {"request-id": f"req_fake{next(_ids)}", **reply.headers}
        if reply.status != 200:
            error = reply.error or {"type": ERROR_TYPES.get(reply.status, "api_error"),
                                    "message": "injected error"}
            return conn.send_json(reply.status, {"type": "error", "error": error}, headers)
        answer = AnthropicAnswer(reply, data, self.model)
        mid = f"msg_fake{next(_ids)}"
        if not data.get("stream"):
            return conn.send_json(200, answer.message(mid), headers)
        return self.send_events(conn, headers, answer.events(mid), reply, paced)


def _build(args: argparse.Namespace) -> FakeAnthropic:
    return FakeAnthropic(args.host, args.port, model=args.model, default_reply=AnthropicReply(
        content=args.reply, delay=args.delay, chunk_delay=args.chunk_delay))


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; prints ``listening on <base_url>`` once ready."""
    serve_main(argv, prog="python -m robutler_kernel.testing.fake_anthropic",
               description=(__doc__ or "").split("\n\n")[0], build=_build)


__all__ = ["AnthropicAnswer", "AnthropicReply", "FakeAnthropic", "RecordedRequest",
           "check_conversation", "error_body", "main"]


if __name__ == "__main__":
    main()

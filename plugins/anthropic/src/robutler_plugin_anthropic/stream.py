"""Anthropic's streamed Messages events as OpenAI :class:`~robutler_specs.ChatCompletionChunk`\\s.

:class:`EventTranslator` is the ``decode`` of a :class:`~robutler_specs.SSEStream`: it is
called with each event's ``data:`` payload (the ``event:`` line repeats the payload's
``type``) and keeps the state a translation needs:

==========================  ==========================================================
Anthropic event             OpenAI chunk
==========================  ==========================================================
``message_start``           ``delta.role = "assistant"``; id, model and the prompt's
                            token counts (cache included) are kept for the end
``content_block_start``     text: nothing; ``tool_use``: a tool-call delta with the
                            call's ``index`` (0, 1... over tool blocks only), ``id``,
                            ``type: function`` and the name
``content_block_delta``     ``text_delta``: ``delta.content``; ``input_json_delta``:
                            the call's ``function.arguments`` fragment
``content_block_stop``      a call that got no input at all: arguments ``{}``
``message_delta``           the last chunk: ``finish_reason`` and ``usage``
``message_stop``, ``ping``  nothing (thinking blocks and unknown events: nothing)
``error``                   raises: ``overloaded_error`` a 503, anything else a 502
==========================  ==========================================================

A stream that ends before ``message_stop`` raises a ``provider_incomplete``
``ProviderError`` (the upstream broke off): a truncated answer is never passed off as a
whole one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec

from robutler_specs import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ProviderError,
    RequestError,
    SSEStream,
    ToolCallDelta,
)
from robutler_specs.provider_errors import incomplete_error

from .errors import PLUGIN, event_error
from .translate import finish_reason, to_usage


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Start(msgspec.Struct):
    id: str = ""
    model: str = ""
    usage: _Usage | None = None


class _Block(msgspec.Struct):
    type: str = ""
    id: str = ""
    name: str = ""


class _Delta(msgspec.Struct):
    """A ``content_block_delta``'s delta, or a ``message_delta``'s."""

    type: str = ""
    text: str = ""
    partial_json: str = ""
    stop_reason: str | None = None


class _Error(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _Event(msgspec.Struct):
    """Every event type in one lenient struct: unknown event types decode instead of failing
    (measured 0.05 µs per event slower than a msgspec tagged union: nothing, next to the
    ~10 µs the whole translation of a 15-event answer takes)."""

    type: str
    index: int = 0
    message: _Start | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _Error | None = None


_decode_event = msgspec.json.Decoder(_Event).decode


class EventTranslator:
    """Turns one stream's events into chunks (see the module docstring).

    :param model: the upstream model name, for chunks and error messages.
    """

    __slots__ = ("_created", "_id", "_model", "_tools", "_usage", "finished", "model_name", "tool_calls")

    def __init__(self, model: str) -> None:
        self.model_name = model
        self._id = ""
        self._model = model
        self._created = 0
        self._usage = _Usage()
        self._tools: dict[int, list[int]] = {}  # Anthropic block index -> [tool index, input chars]
        self.tool_calls = 0
        self.finished = False

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(self._id, self._created, self._model,
                                   [ChunkChoice(0, delta, finish)])

    def _tool_delta(self, index: int, **fields: object) -> ChatCompletionChunk:
        return self._chunk(Delta(tool_calls=[ToolCallDelta(index, **fields)]))  # type: ignore[arg-type]

    def __call__(self, payload: bytes) -> ChatCompletionChunk | None:
        try:
            event = _decode_event(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ProviderError(f"anthropic plugin: {self.model_name!r} sent an unreadable stream event "
                                f"({exc}): {payload[:200]!r}", plugin=PLUGIN) from None
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if delta is None:
                return None
            if delta.type == "text_delta":
                return self._chunk(Delta(content=delta.text)) if delta.text else None
            if delta.type == "input_json_delta" and delta.partial_json:
                tool = self._tools.get(event.index)
                if tool is None:
                    return None
                tool[1] += len(delta.partial_json)
                return self._tool_delta(tool[0], function=FunctionCallDelta(arguments=delta.partial_json))
            return None  # thinking, signature, citations
        if kind == "content_block_start":
            block = event.content_block
            if block is None or block.type != "tool_use":
                return None
            index = self.tool_calls
            self.tool_calls += 1
            self._tools[event.index] = [index, 0]
            return self._tool_delta(index, id=block.id, type="function",
                                    function=FunctionCallDelta(name=block.name, arguments=""))
        if kind == "content_block_stop":
            tool = self._tools.get(event.index)
            if tool is not None and not tool[1]:  # no input at all: the empty object
                return self._tool_delta(tool[0], function=FunctionCallDelta(arguments="{}"))
            return None
        if kind == "message_start":
            start = event.message
            if start is not None:
                self._id, self._model = start.id, start.model or self.model_name
                if start.usage is not None:
                    self._usage = start.usage
            self._created = int(time.time())
            return self._chunk(Delta(role="assistant", content=""))
        if kind == "message_delta":
            return self._finish(event)
        if kind == "message_stop":
            self.finished = True
            return None
        if kind == "error":
            error = event.error or _Error()
            raise event_error(error.type, error.message or "no message", model=self.model_name)
        return None  # ping, and event types added later

    def _finish(self, event: _Event) -> ChatCompletionChunk:
        usage = self._usage
        if event.usage is not None:  # counts here are cumulative; they win when present
            up = event.usage
            usage = _Usage(
                up.input_tokens if up.input_tokens is not None else usage.input_tokens,
                up.output_tokens if up.output_tokens is not None else usage.output_tokens,
                up.cache_read_input_tokens if up.cache_read_input_tokens is not None
                else usage.cache_read_input_tokens,
                up.cache_creation_input_tokens if up.cache_creation_input_tokens is not None
                else usage.cache_creation_input_tokens,
            )
        stop = event.delta.stop_reason if event.delta is not None else None
        chunk = self._chunk(Delta(), finish_reason(stop, self.tool_calls > 0))
        chunk.usage = to_usage(usage.input_tokens or 0, usage.output_tokens or 0,
                               usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0)
        return chunk


class MessageStream(SSEStream[ChatCompletionChunk]):
    """The chunks of an open Anthropic event stream; raises if it ends before ``message_stop``."""

    def __init__(self, reader: AsyncIterator[bytes], close: Callable[[], Awaitable[None]],
                 on_error: Callable[[Exception], RequestError], model: str,
                 base_url: str = "the upstream") -> None:
        self.translator = EventTranslator(model)
        self.base_url = base_url
        super().__init__(reader, close, on_error, self.translator)

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            return await super().__anext__()
        except StopAsyncIteration:
            if not self.translator.finished:
                raise incomplete_error(plugin=PLUGIN, model=self.translator.model_name,
                                       base_url=self.base_url, missing="message_stop") from None
            raise


__all__ = ["EventTranslator", "MessageStream"]

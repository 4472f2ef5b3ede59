"""Read an upstream SSE response as :class:`~robutler_specs.ChatCompletionChunk` objects.

The SDK's own stream builds a pydantic model per chunk; decoding each ``data:`` payload
straight into the contract's msgspec structs is several times cheaper, and this is the
hot path of every streamed request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from msgspec import UNSET

from robutler_specs import ChatCompletionChunk, ProviderError, RequestError, SSEStream
from robutler_specs.provider_errors import incomplete_error

from .errors import PLUGIN

_decode_chunk = msgspec.json.Decoder(ChatCompletionChunk).decode
_decode_any = msgspec.json.Decoder().decode


def _lenient(payload: bytes) -> ChatCompletionChunk:
    """Decode a chunk that is not quite OpenAI-shaped (fields missing, ``logprobs``...)."""
    try:
        raw: Any = _decode_any(payload)
    except msgspec.DecodeError as exc:
        raise ProviderError(f"openai plugin: the upstream sent invalid JSON in its stream: {exc}",
                            plugin=PLUGIN) from None
    if isinstance(raw, dict) and "error" in raw:  # a mid-stream error event
        error = raw["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ProviderError(f"openai plugin: the upstream failed mid-stream: {message}",
                            plugin=PLUGIN)
    if not isinstance(raw, dict):
        raise ProviderError(f"openai plugin: unexpected stream event {payload[:200]!r}",
                            plugin=PLUGIN)
    raw.setdefault("id", "")
    raw.setdefault("created", 0)
    raw.setdefault("model", "")
    choices = raw.get("choices") or []
    for index, choice in enumerate(choices):
        choice.pop("logprobs", None)
        choice.setdefault("index", index)
        choice["delta"] = choice.get("delta") or {}
    raw["choices"] = choices
    try:
        return msgspec.convert(raw, ChatCompletionChunk, strict=False)
    except msgspec.ValidationError as exc:
        raise ProviderError(f"openai plugin: malformed stream chunk ({exc}): {payload[:200]!r}",
                            plugin=PLUGIN) from None


def decode_chunk(payload: bytes) -> ChatCompletionChunk:
    """One ``data:`` payload as a chunk; raises ``ProviderError`` for error events."""
    try:
        chunk = _decode_chunk(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        chunk = _lenient(payload)
    usage = chunk.usage
    if usage:
        # ``cost`` and ``estimated`` are Robutler's own fields: an upstream's ``cost``
        # (OpenRouter sends one) is not credits.
        usage.cost = usage.estimated = UNSET
        if not usage.total_tokens:
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    return chunk


class ChunkStream(SSEStream[ChatCompletionChunk]):
    """The chunks of an open upstream SSE response, up to ``data: [DONE]``.

    A body that runs out before ``[DONE]`` is a whole answer only if a chunk carried a
    ``finish_reason`` (some servers never send ``[DONE]``); otherwise the upstream broke
    off, and the end of the body raises a ``provider_incomplete`` error: a truncated answer
    is never passed off as a whole one.

    :param model: the upstream model, for the error's message.
    :param base_url: the upstream, for the error's message.
    """

    def __init__(self, reader: AsyncIterator[bytes], close: Callable[[], Awaitable[None]],
                 on_error: Callable[[Exception], RequestError], *, model: str = "?",
                 base_url: str = "the upstream") -> None:
        super().__init__(reader, close, on_error, self._decode_tracking, done=b"[DONE]")
        self.model, self.base_url = model, base_url
        self.finish_reason: str | None = None

    def _decode_tracking(self, payload: bytes) -> ChatCompletionChunk:
        chunk = decode_chunk(payload)
        for choice in chunk.choices:
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
        return chunk

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            return await super().__anext__()
        except StopAsyncIteration:
            if not self.finished and self.finish_reason is None:
                raise incomplete_error(plugin=PLUGIN, model=self.model, base_url=self.base_url,
                                       missing="a finish reason or [DONE]") from None
            raise


def chunk_stream(
    reader: AsyncIterator[bytes],
    close: Callable[[], Awaitable[None]],
    on_error: Callable[[Exception], RequestError],
    *,
    model: str = "?",
    base_url: str = "the upstream",
) -> ChunkStream:
    """The chunks of an open upstream SSE response, up to ``data: [DONE]`` (see
    :class:`ChunkStream`)."""
    return ChunkStream(reader, close, on_error, model=model, base_url=base_url)


__all__ = ["ChunkStream", "chunk_stream", "decode_chunk"]

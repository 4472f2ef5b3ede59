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


def chunk_stream(
    reader: AsyncIterator[bytes],
    close: Callable[[], Awaitable[None]],
    on_error: Callable[[Exception], RequestError],
) -> SSEStream[ChatCompletionChunk]:
    """The chunks of an open upstream SSE response, up to ``data: [DONE]``."""
    return SSEStream(reader, close, on_error, decode_chunk, done=b"[DONE]")


__all__ = ["chunk_stream", "decode_chunk"]

"""Read an upstream SSE response as :class:`~robutler_specs.ChatCompletionChunk` objects.

The SDK's own stream builds a pydantic model per chunk; decoding each ``data:`` payload
straight into the contract's msgspec structs is several times cheaper, and this is the
hot path of every streamed request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from msgspec import UNSET

from robutler_specs import ChatCompletionChunk, ProviderError, RequestError

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


class ChunkStream:
    """An async iterator of chunks over an open upstream SSE response.

    ``aclose()`` closes the response; when the stream did not run to its end that drops
    the connection, which is how the upstream learns the request was cancelled.

    :param reader: the response body, as it arrives.
    :param close: closes the response (idempotent).
    :param on_error: turns a read failure (timeout, connection lost) into a RequestError.
    """

    def __init__(
        self,
        reader: AsyncIterator[bytes],
        close: Callable[[], Awaitable[None]],
        on_error: Callable[[Exception], RequestError],
    ) -> None:
        self._close = close
        self._on_error = on_error
        self._reader = reader
        self._payloads: deque[bytes] = deque()
        self._lines: list[bytes] = []  # data lines of the event being read
        self._rest = b""
        self._done = False  # ``data: [DONE]`` seen

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        while True:
            if self._payloads and not self._done:
                payload = self._payloads.popleft()
                if payload != b"[DONE]":
                    return decode_chunk(payload)
                self._done = True
            try:
                data = await self._reader.__anext__()
            except StopAsyncIteration:
                await self.aclose()
                if not self._done:
                    self._feed(b"\n\n")  # an unterminated last event still counts
                    if self._payloads:
                        continue
                raise
            except RequestError:
                raise
            except Exception as exc:
                await self.aclose()
                raise self._on_error(exc) from exc
            if not self._done:  # after [DONE] the body is only drained, so that the
                self._feed(data)  # connection goes back to the pool

    def _feed(self, data: bytes) -> None:
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._lines:
                    self._payloads.append(b"\n".join(self._lines))
                    self._lines = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._lines.append(value[1:] if value.startswith(b" ") else value)
            # ``event:``, ``id:``, ``retry:`` and ``:`` comments carry nothing we use

    async def aclose(self) -> None:
        """Close the upstream response (idempotent)."""
        await self._close()


__all__ = ["ChunkStream", "decode_chunk"]

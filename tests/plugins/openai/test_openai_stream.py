"""The SSE reader: any byte split, lenient chunks, error events, and closing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import msgspec
import pytest
from openai_helpers import collect, run

from robutler_plugin_openai.errors import map_error
from robutler_plugin_openai.stream import chunk_stream, decode_chunk
from robutler_specs import ProviderError, RequestError


class StubResponse:
    """Just enough of a streamed response: its body in given pieces, and aclose()."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.closed = 0

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        self.closed += 1


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def sse(*events: dict[str, Any], done: bool = True, newline: bytes = b"\n") -> bytes:
    body = b"".join(b"data: " + json.dumps(e).encode() + newline * 2 for e in events)
    return body + (b"data: [DONE]" + newline * 2 if done else b"")


def read(pieces: list[bytes]) -> tuple[list[Any], StubResponse]:
    response = StubResponse(pieces)
    stream = chunk_stream(response.aiter_bytes(), response.aclose, lambda exc: ProviderError(str(exc)))
    return run(collect(stream)), response


def texts(chunks: list[Any]) -> list[str | None]:
    return [c.choices[0].delta.content for c in chunks if c.choices]


BODY = sse(chunk("Hel"), chunk("lo"), chunk(finish="stop"),
           {**chunk(), "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}})


def test_every_split_of_the_body_reads_the_same() -> None:
    expected, _ = read([BODY])
    assert texts(expected) == ["Hel", "lo", None] and expected[-1].usage.total_tokens == 4
    for cut in range(1, len(BODY)):
        chunks, response = read([BODY[:cut], BODY[cut:]])
        assert chunks == expected, cut
        assert response.closed >= 1


def test_crlf_comments_event_fields_and_a_missing_done() -> None:
    # A finish reason makes the answer whole even without [DONE] (some servers send none).
    body = b": keep-alive\r\n\r\nevent: message\r\nid: 1\r\n" + sse(
        chunk("a"), chunk("b"), chunk(finish="stop"), done=False, newline=b"\r\n")
    chunks, _ = read([body])
    assert texts(chunks) == ["a", "b", None]


def test_an_unterminated_last_event_still_counts() -> None:
    chunks, _ = read([b"data: " + json.dumps(chunk("x", finish="stop")).encode()])
    assert texts(chunks) == ["x"]


@pytest.mark.parametrize("done", [False, True])
def test_a_body_that_ends_without_finish_reason_or_done_is_incomplete(done: bool) -> None:
    body = sse(chunk("a"), chunk("b"), done=done)
    if done:  # [DONE] is the end: the kernel decides about a missing finish reason
        assert texts(read([body])[0]) == ["a", "b"]
        return
    for cut in (len(body), body.index(b"\n\n") + 2):  # after the last event, after the first
        with pytest.raises(ProviderError, match="ended without a finish reason or \\[DONE\\]") as caught:
            read([body[:cut]])
        assert caught.value.code == "provider_incomplete" and caught.value.retryable


def test_nothing_after_done_is_read_as_a_chunk() -> None:
    chunks, response = read([sse(chunk("a")) + b"data: " + json.dumps(chunk("late")).encode() + b"\n\n"])
    assert texts(chunks) == ["a"] and response.closed >= 1


def test_lenient_chunks_from_other_servers() -> None:
    odd = {"choices": [{"delta": {"content": "hi"}, "logprobs": {"content": []}}]}
    parsed = decode_chunk(json.dumps(odd).encode())
    assert parsed.choices[0].delta.content == "hi" and parsed.id == ""


def test_upstream_cost_is_not_taken_for_credits() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "cost": 0.5}
    parsed = decode_chunk(json.dumps({**chunk(), "choices": [], "usage": usage}).encode())
    assert parsed.usage is not None and parsed.usage.total_tokens == 5
    assert "cost" not in json.loads(msgspec.json.encode(parsed.usage))


def test_an_error_event_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="server had an error"):
        read([sse(chunk("a"), {"error": {"message": "The server had an error", "type": "server_error"}})])


def test_invalid_json_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="invalid JSON"):
        read([b"data: {oops\n\n"])


def test_read_failures_go_through_on_error() -> None:
    class Broken(StubResponse):
        async def aiter_bytes(self) -> AsyncIterator[bytes]:
            yield sse(chunk("a"), done=False)
            raise httpx2.RemoteProtocolError("peer closed connection")

    response = Broken([])

    def on_error(exc: Exception) -> RequestError:
        return map_error(exc, model="gpt-x", base_url="http://up/v1", timeout=1)

    async def body() -> list[Any]:
        return await collect(chunk_stream(response.aiter_bytes(), response.aclose, on_error))

    with pytest.raises(ProviderError, match="connection to http://up/v1 broke"):
        run(body())
    assert response.closed == 1

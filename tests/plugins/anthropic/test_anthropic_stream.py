"""The event translator: tool-call indexes, usage from both ends, error events, truncation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from anthropic_helpers import assemble, collect

from robutler_plugin_anthropic.errors import map_error
from robutler_plugin_anthropic.stream import MessageStream
from robutler_specs import ProviderError, RequestError, ServiceUnavailable


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), json.dumps(e).encode()) for e in events)


START = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {
    "input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 50, "cache_creation_input_tokens": 5}}}
STOP = {"type": "message_stop"}


def block(index: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": {"type": kind, **fields}}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def end(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def finish(stop_reason: str, **usage: int) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage}


class Body:
    """A streamed body in given pieces; counts aclose()."""

    def __init__(self, *pieces: bytes, fail: Exception | None = None) -> None:
        self.pieces, self.fail, self.closed = pieces, fail, 0

    async def read(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.fail is not None:
            raise self.fail

    async def aclose(self) -> None:
        self.closed += 1


def read(body: Body, on_error: Any = None) -> list[Any]:
    stream = MessageStream(body.read(), body.aclose, on_error or (lambda exc: ProviderError(str(exc))), "claude-x")
    return asyncio.run(collect(stream))


def test_tool_indexes_count_tool_blocks_only_and_ids_come_first() -> None:
    body = Body(sse(
        START, {"type": "ping"},
        block(0, "thinking", thinking=""), delta(0, type="thinking_delta", thinking="hmm"),
        delta(0, type="signature_delta", signature="sig"), end(0),
        block(1, "text", text=""), delta(1, type="text_delta", text="Checking "), delta(1, type="text_delta", text="both."), end(1),
        block(2, "tool_use", id="toolu_a", name="get_weather", input={}),
        delta(2, type="input_json_delta", partial_json=""), delta(2, type="input_json_delta", partial_json='{"city":'),
        delta(2, type="input_json_delta", partial_json=' "Oslo"}'), end(2),
        block(3, "tool_use", id="toolu_b", name="now", input={}), end(3),
        finish("tool_use", output_tokens=30), STOP,
    ))
    chunks = read(body)
    assert chunks[0].choices[0].delta.role == "assistant" and (chunks[0].id, chunks[0].model) == ("msg_1", "claude-x")
    got = assemble(chunks)
    assert got["text"] == "Checking both."
    assert got["tool_calls"] == [("toolu_a", "get_weather", {"city": "Oslo"}), ("toolu_b", "now", {})]
    assert got["indexes"] == [0, 1] and got["finish_reason"] == "tool_calls"
    firsts = [d for c in chunks for d in c.choices[0].delta.tool_calls or () if d.id]
    assert [(d.index, d.type, d.function.name) for d in firsts] == [(0, "function", "get_weather"), (1, "function", "now")]
    usage = got["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (65, 30, 95)
    assert (usage.cached_tokens, usage.cache_creation_tokens) == (50, 5)
    assert [c.usage for c in chunks].count(usage) == 1  # on the last chunk only
    assert body.closed >= 1


def test_cumulative_counts_in_message_delta_win() -> None:
    chunks = read(Body(sse(START, block(0, "text", text=""), delta(0, type="text_delta", text="x"), end(0),
                           finish("max_tokens", input_tokens=12, output_tokens=7, cache_read_input_tokens=0), STOP)))
    usage = assemble(chunks)["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_creation_tokens) == (17, 7, 0, 5)
    assert assemble(chunks)["finish_reason"] == "length"


@pytest.mark.parametrize(("kind", "error_class", "status"), [
    ("overloaded_error", ServiceUnavailable, 503), ("api_error", ProviderError, 502)])
def test_an_error_event_raises(kind: str, error_class: type[RequestError], status: int) -> None:
    body = Body(sse(START, block(0, "text", text=""), delta(0, type="text_delta", text="par"),
                    {"type": "error", "error": {"type": kind, "message": "Overloaded"}}))
    with pytest.raises(error_class) as caught:
        read(body)
    error = caught.value
    assert error.status == status and error.retryable and error.plugin == "anthropic"
    assert "Overloaded" in error.message and kind in error.message and "'claude-x'" in error.message


def test_a_stream_cut_before_message_stop_is_an_error() -> None:
    body = Body(sse(START, block(0, "text", text=""), delta(0, type="text_delta", text="half")))
    with pytest.raises(ProviderError, match="ended without message_stop") as caught:
        read(body)
    assert caught.value.code == "provider_incomplete" and caught.value.retryable


def test_unreadable_events_are_provider_errors() -> None:
    with pytest.raises(ProviderError, match="unreadable stream event"):
        read(Body(b"event: message_start\ndata: {oops\n\n"))


def test_unknown_events_and_blocks_are_skipped() -> None:
    chunks = read(Body(sse(START, {"type": "some_future_event", "payload": 1},
                           block(0, "server_tool_use", id="srv", name="web_search"), end(0),
                           block(1, "text", text=""), delta(1, type="citations_delta", citation={}),
                           delta(1, type="text_delta", text="ok"), end(1), finish("end_turn", output_tokens=1), STOP)))
    got = assemble(chunks)
    assert (got["text"], got["tool_calls"], got["finish_reason"]) == ("ok", [], "stop")


def test_read_failures_go_through_on_error() -> None:
    import httpx2

    body = Body(sse(START), fail=httpx2.RemoteProtocolError("peer closed connection"))

    def on_error(exc: Exception) -> RequestError:
        return map_error(exc, model="claude-x", base_url="http://up", timeout=1)

    with pytest.raises(ProviderError, match="connection to http://up broke"):
        read(body, on_error)
    assert body.closed == 1

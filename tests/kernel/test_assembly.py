"""Tests for robutler_kernel.assembly: streamed chunks assembled into one assistant message."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel.assembly import StreamAssembler
from robutler_specs import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def chunk(
    delta: Delta | None = None,
    finish: str | None = None,
    usage: Usage | None = None,
    model: str = "gpt-test",
    choices: bool = True,
) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="c",
        created=0,
        model=model,
        choices=[ChunkChoice(0, delta or Delta(), finish)] if choices else [],
        usage=usage,
    )


def text(piece: str) -> ChatCompletionChunk:
    return chunk(Delta(content=piece))


def call_delta(
    index: int, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> ChatCompletionChunk:
    function = FunctionCallDelta(name=name, arguments=args) if name or args is not None else None
    return chunk(
        Delta(tool_calls=[ToolCallDelta(index=index, id=id, type="function" if id else None, function=function)])
    )


def assemble(chunks: list[ChatCompletionChunk]) -> StreamAssembler:
    assembler = StreamAssembler()
    for c in chunks:
        assembler.add(c)
    return assembler


def test_text_deltas_are_concatenated() -> None:
    assembler = assemble(
        [chunk(Delta(role="assistant", content="")), text("Hel"), text("lo"), text(" world"), chunk(finish="stop")]
    )
    result = assembler.result()
    assert assembler.text == "Hello world"
    assert result.message == Message(role="assistant", content="Hello world")
    assert result.finish_reason == "stop"


def test_tool_calls_are_assembled_by_index_with_ids_and_names() -> None:
    chunks = [
        call_delta(0, id="call_a", name="get_weather", args=""),
        call_delta(1, id="call_b", name="get_time", args='{"tz"'),
        call_delta(0, args='{"city": '),
        call_delta(1, args=': "UTC"}'),
        call_delta(0, args='"Paris"}'),
        chunk(finish="tool_calls"),
    ]
    result = assemble(chunks).result()
    assert result.message.tool_calls == [
        ToolCall(id="call_a", function=FunctionCall("get_weather", '{"city": "Paris"}')),
        ToolCall(id="call_b", function=FunctionCall("get_time", '{"tz": "UTC"}')),
    ]
    assert result.message.content is None
    assert result.finish_reason == "tool_calls"


def test_tool_calls_are_ordered_by_index_whatever_the_arrival_order() -> None:
    result = assemble([call_delta(2, id="c2", name="two"), call_delta(0, id="c0", name="zero")]).result()
    assert [c.function.name for c in result.message.tool_calls or []] == ["zero", "two"]


def test_tool_call_without_id_gets_a_generated_unique_one() -> None:
    result = assemble([call_delta(0, name="a", args="{}"), call_delta(1, name="b", args="{}")]).result()
    ids = [c.id for c in result.message.tool_calls or []]
    assert all(ids) and len(set(ids)) == 2


def test_text_and_tool_calls_together() -> None:
    result = assemble([text("Let me check."), call_delta(0, id="x", name="f", args="{}")]).result()
    assert result.message.content == "Let me check."
    assert result.message.tool_calls == [ToolCall(id="x", function=FunctionCall("f", "{}"))]
    assert result.finish_reason == "tool_calls"  # inferred when the provider sends none


def test_missing_finish_reason_defaults_to_stop_for_text() -> None:
    assert assemble([text("hi")]).result().finish_reason == "stop"


def test_explicit_finish_reason_wins() -> None:
    assert assemble([text("trunc"), chunk(finish="length")]).result().finish_reason == "length"


def test_empty_stream_gives_an_empty_assistant_message() -> None:
    result = StreamAssembler().result()
    assert result.message == Message(role="assistant", content="")
    assert result.finish_reason == "stop"
    assert result.usage == Usage()


def test_usage_from_a_final_chunk_without_choices() -> None:
    usage = Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)
    result = assemble([text("ok"), chunk(finish="stop"), chunk(usage=usage, choices=False)]).result()
    assert result.usage == usage
    assert result.message.content == "ok"


def test_the_last_usage_wins() -> None:
    first = Usage(prompt_tokens=1, completion_tokens=0, total_tokens=1)
    last = Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8)
    assert assemble([chunk(usage=first), text("x"), chunk(usage=last)]).result().usage == last


def test_model_is_taken_from_the_first_chunk() -> None:
    result = assemble([chunk(Delta(content="a"), model="gpt-4o-2024"), chunk(Delta(content="b"), model="other")]).result()
    assert result.model == "gpt-4o-2024"


# -- property -----------------------------------------------------------------------------------------


def split(data: st.DataObject, value: str) -> list[str]:
    """Split ``value`` into consecutive pieces (some possibly empty)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(value)), max_size=6)))
    bounds = [0, *cuts, len(value)]
    return [value[a:b] for a, b in itertools.pairwise(bounds)]


_json_ish = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)
_name = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


@given(
    st.data(),
    st.text(max_size=60),
    st.lists(st.tuples(_name, _json_ish), max_size=4),
    st.sampled_from([None, "stop", "tool_calls", "length"]),
)
def test_any_split_assembles_to_the_same_message(
    data: st.DataObject,
    content: str,
    calls: list[tuple[str, str]],
    finish: str | None,
) -> None:
    # Every call's fragments, in order; the first carries the id and the name.
    streams: list[list[ChatCompletionChunk]] = []
    for index, (name, arguments) in enumerate(calls):
        pieces = split(data, arguments)
        first, *rest = pieces
        streams.append(
            [call_delta(index, id=f"call_{index}_x", name=name, args=first)]
            + [call_delta(index, args=p) for p in rest]
        )
    streams.append([text(p) for p in split(data, content)])
    # Interleave the streams at random, keeping each one's own order.
    chunks: list[ChatCompletionChunk] = []
    while any(streams):
        pick = data.draw(st.sampled_from([i for i, s in enumerate(streams) if s]))
        chunks.append(streams[pick].pop(0))
    usage = Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)
    chunks.append(chunk(finish=finish, usage=usage))

    result = assemble(chunks).result()

    expected_calls = [
        ToolCall(id=f"call_{i}_x", function=FunctionCall(name, arguments))
        for i, (name, arguments) in enumerate(calls)
    ]
    assert result.message.tool_calls == (expected_calls or None)
    if content or not calls:
        assert result.message.content == content
    else:
        assert result.message.content is None
    assert result.finish_reason == (finish or ("tool_calls" if calls else "stop"))
    assert result.usage == usage

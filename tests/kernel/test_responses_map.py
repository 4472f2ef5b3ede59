"""The Responses <-> chat mapping (``robutler_kernel.responses_map``): round trips of
items, messages and tools (hypothesis), the output of a completion, and the stream of
events a turn's chunks make."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel import responses_map as rmap
from robutler_specs import (
    BadRequest,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    PromptTokensDetails,
    RequestError,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    Usage,
)
from robutler_specs.responses import (
    FunctionCallItem,
    InputContent,
    InputItem,
    OutputMessage,
    OutputText,
    Response,
    ResponsesRequest,
    ResponsesTool,
    StoredResponse,
    TextConfig,
    TextFormat,
)
from robutler_specs.wire import FunctionDefinition

text = st.text(max_size=12)
names = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
arguments = st.dictionaries(names, st.integers() | text, max_size=3).map(json.dumps)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Chat conversations as the loop produces them: user turns, assistant answers,
    assistant tool calls each followed by their results."""
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(Message(role=draw(st.sampled_from(["system", "developer"])), content=draw(text)))
    for turn in range(draw(st.integers(1, 4))):
        messages.append(Message(role="user", content=draw(
            text | st.lists(text.map(lambda t: {"type": "text", "text": t}), min_size=1, max_size=2))))
        for call_round in range(draw(st.integers(0, 2))):
            calls = [
                ToolCall(id=f"call_{turn}_{call_round}_{i}", function=FunctionCall(draw(names), draw(arguments)))
                for i in range(draw(st.integers(1, 3)))
            ]
            messages.append(Message(role="assistant", content=draw(st.none() | text), tool_calls=calls))
            messages.extend(Message(role="tool", tool_call_id=c.id, content=draw(text)) for c in calls)
        messages.append(Message(role="assistant", content=draw(text)))
    return messages


@given(conversations())
def test_messages_survive_items_and_back(messages: list[Message]) -> None:
    items = rmap.items_of(messages)
    assert rmap.messages_of(items) == messages


@given(conversations())
def test_items_survive_messages_and_back_and_json(messages: list[Message]) -> None:
    items = rmap.items_of(messages)
    assert rmap.items_of(rmap.messages_of(items)) == items
    # What is stored decodes to what was stored.
    wire = msgspec.json.encode(items)
    assert msgspec.json.decode(wire, type=list[InputItem]) == items


tools = st.lists(
    st.builds(
        lambda n, d, p, s: ToolDefinition(FunctionDefinition(name=n, description=d, parameters=p, strict=s)),
        names, st.none() | text,
        st.none() | st.just({"type": "object", "properties": {"x": {"type": "string"}}}),
        st.none() | st.booleans(),
    ),
    max_size=3,
)


@given(tools)
def test_tools_survive_both_ways(definitions: list[ToolDefinition]) -> None:
    assert rmap.tool_definitions(rmap.responses_tools(definitions)) == definitions


@given(st.lists(st.tuples(names, arguments, st.none() | text), max_size=3), st.none() | text)
def test_output_feeds_the_next_turn_as_the_same_message(calls: list[Any], content: str | None) -> None:
    message = Message(role="assistant", content=content,
                      tool_calls=[ToolCall(f"c{i}", FunctionCall(n, a)) for i, (n, a, _) in enumerate(calls)] or None)
    output = rmap.output_of(message, "tool_calls" if calls else "stop")
    (back,) = rmap.messages_of(rmap.conversation_items(output))
    assert back.tool_calls == message.tool_calls
    assert (back.content or "") == (message.content or "")


def test_a_string_input_is_one_user_message() -> None:
    assert rmap.messages_of(rmap.input_items("hi")) == [Message(role="user", content="hi")]


def test_content_parts_map_to_chat_parts() -> None:
    item = InputItem(role="user", content=[
        InputContent(type="input_text", text="look"),
        InputContent(type="input_image", image_url="https://x/cat.png", detail="low"),
        InputContent(type="input_file", file_data="data:application/pdf;base64,AA==", filename="a.pdf"),
    ])
    (message,) = rmap.messages_of([item])
    assert message.content == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA==", "filename": "a.pdf"}},
    ]
    # An assistant's output_text parts (history sent back) are its plain text.
    history = InputItem(role="assistant", content=[InputContent(type="output_text", text="a"),
                                                   InputContent(type="output_text", text="b")])
    assert rmap.messages_of([history]) == [Message(role="assistant", content="ab")]


@pytest.mark.parametrize(("items", "param"), [
    ([InputItem(content="x")], "input[0].role"),
    ([InputItem(role="user")], "input[0].content"),
    ([InputItem(type="function_call_output", call_id="nope", output="x")], "input[0].call_id"),
    ([InputItem(type="function_call", call_id="c", name="f")], "input[0].arguments"),
    ([InputItem(type="web_search_call")], "input[0].type"),
    ([InputItem(role="user", content=[InputContent(type="input_audio")])], "input[0].content[0].type"),
    ([InputItem(role="user", content=[InputContent(type="input_image", file_id="f")])],
     "input[0].content[0].image_url"),
])
def test_items_the_mapping_cannot_serve_are_400s_naming_the_field(items: list[InputItem], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        rmap.messages_of(items)
    assert caught.value.param == param and caught.value.status == 400


def test_an_output_may_answer_a_call_of_the_stored_conversation() -> None:
    item = InputItem(type="function_call_output", call_id="c1", output="ok")
    assert rmap.messages_of([item], known_calls={"c1"}) == [Message(role="tool", tool_call_id="c1", content="ok")]


def test_item_ids_name_their_response() -> None:
    """An item_reference gives only an item's id: it must lead back to the stored response."""
    ids = rmap.item_ids("resp_0a1b")
    made = [ids("msg"), ids("fc"), ids("call")]
    assert made == ["msg_0a1b_0", "fc_0a1b_1", "call_0a1b_2"]
    assert {rmap.response_id_of(i) for i in made} == {"resp_0a1b"}
    assert rmap.response_id_of("msg_0a1b") is None and rmap.response_id_of("nothing") is None


def test_reasoning_items_are_dropped() -> None:
    assert rmap.messages_of([InputItem(type="reasoning", id="rs_1"), InputItem(role="user", content="hi")]) == [
        Message(role="user", content="hi")]


def test_parameters_in_chat_names() -> None:
    request = ResponsesRequest(
        input="x", temperature=0.2, top_p=0.9, max_output_tokens=50, parallel_tool_calls=False, user="u",
        tool_choice={"type": "function", "name": "f"},
        text=TextConfig(format=TextFormat(type="json_schema", name="person", schema={"type": "object"}, strict=True)),
    )
    assert rmap.params_of(request) == {
        "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 50, "parallel_tool_calls": False, "user": "u",
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "person", "schema": {"type": "object"}, "strict": True}},
    }
    assert rmap.response_format_of(TextConfig(format=TextFormat(type="json_object"))) == {"type": "json_object"}
    assert rmap.response_format_of(TextConfig(format=TextFormat(type="text"))) is None
    with pytest.raises(BadRequest, match=r"text\.format\.schema"):
        rmap.response_format_of(TextConfig(format=TextFormat(type="json_schema", name="x")))
    with pytest.raises(BadRequest) as caught:
        rmap.tool_definitions([ResponsesTool(type="function", name="f"), ResponsesTool(type="web_search")])
    assert caught.value.param == "tools[1].type"


def test_usage_in_responses_names() -> None:
    usage = Usage(30, 7, 37, cost=0.5, prompt_tokens_details=PromptTokensDetails(12, 3))
    out = msgspec.to_builtins(rmap.usage_of(usage))
    assert out == {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 12, "cache_write_tokens": 3},
                   "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 37,
                   "cost": 0.5}


def _ids() -> Any:
    counter = iter(range(1000))
    return lambda prefix: f"{prefix}_{next(counter)}"


BASE = Response(id="resp_1", created_at=1, model="agent", status="in_progress")


def test_a_completion_as_a_response() -> None:
    message = Message(role="assistant", content="Checking.",
                      tool_calls=[ToolCall("call_a", FunctionCall("f", '{"x": 1}'))])
    completion = ChatCompletion(id="resp_1", created=1, model="agent",
                                choices=[Choice(0, message, "tool_calls")], usage=Usage(3, 2, 5))
    response = rmap.response_of(BASE, completion, 2, _ids())
    assert response.status == "completed" and response.completed_at == 2
    assert response.output == [
        OutputMessage(id="msg_0", content=[OutputText("Checking.")]),
        FunctionCallItem(id="fc_1", call_id="call_a", name="f", arguments='{"x": 1}'),
    ]
    cut = ChatCompletion(id="resp_1", created=1, model="agent",
                         choices=[Choice(0, Message(role="assistant", content="abc"), "length")], usage=Usage())
    response = rmap.response_of(BASE, cut, 2, _ids())
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert isinstance(response.output[0], OutputMessage) and response.output[0].status == "incomplete"


def _chunk(delta: Delta | None = None, finish: str | None = None, usage: Usage | None = None) -> ChatCompletionChunk:
    choices = [] if delta is None else [ChunkChoice(0, delta, finish)]
    return ChatCompletionChunk(id="resp_1", created=1, model="agent", choices=choices,
                               usage=usage if usage is not None else msgspec.UNSET)


def _types(events: list[Any]) -> list[str]:
    return [e.__struct_config__.tag for e in events]


def test_text_chunks_make_the_documented_event_order() -> None:
    stream = rmap.ResponseEvents(BASE, lambda: 5.0, _ids())
    events = []
    for chunk in [_chunk(Delta(role="assistant", content="")), _chunk(Delta(content="Hel")),
                  _chunk(Delta(content="lo")), _chunk(Delta(), "stop", Usage(2, 2, 4))]:
        events += stream.feed(chunk)
    assert _types(events) == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[6].text == "Hello"
    final = events[-1].response
    assert final.output == [OutputMessage(id="msg_0", content=[OutputText("Hello")])]
    assert final.usage is not None and final.usage.total_tokens == 4 and final.completed_at == 5
    assert stream.done and stream.response == final
    assert stream.feed(_chunk(None, usage=Usage())) == []  # after the end: nothing


def test_text_then_function_calls_in_pieces() -> None:
    stream = rmap.ResponseEvents(BASE, lambda: 5.0, _ids())
    events = []
    for chunk in [
        _chunk(Delta(role="assistant", content="")), _chunk(Delta(content="Let me see.")),
        _chunk(Delta(tool_calls=[ToolCallDelta(0, "call_a", "function", FunctionCallDelta("f", '{"x"'))])),
        _chunk(Delta(tool_calls=[ToolCallDelta(0, function=FunctionCallDelta(arguments=": 1}"))])),
        _chunk(Delta(tool_calls=[ToolCallDelta(1, "call_b", "function", FunctionCallDelta("g", "{}"))])),
        _chunk(Delta(), "tool_calls", Usage(1, 1, 2)),
    ]:
        events += stream.feed(chunk)
    assert _types(events) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    assert stream.response.output == [
        OutputMessage(id="msg_0", content=[OutputText("Let me see.")]),
        FunctionCallItem(id="fc_1", call_id="call_a", name="f", arguments='{"x": 1}'),
        FunctionCallItem(id="fc_2", call_id="call_b", name="g", arguments="{}"),
    ]


def test_a_stream_that_breaks_ends_with_error_and_failed() -> None:
    stream = rmap.ResponseEvents(BASE, lambda: 5.0, _ids())
    stream.feed(_chunk(Delta(role="assistant", content="")))
    stream.feed(_chunk(Delta(content="part")))
    events = stream.fail(RequestError("upstream hung up", status=502, code="provider_error"))
    assert _types(events) == ["error", "response.failed"]
    assert events[0].code == "provider_error" and events[0].message == "upstream hung up"
    failed = events[1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "provider_error"


def test_a_stored_response_decodes_to_itself() -> None:
    response = msgspec.structs.replace(BASE, status="completed", output=[
        OutputMessage(id="m", content=[OutputText("hi")]), FunctionCallItem(id="f", call_id="c", name="n", arguments="{}")])
    stored = StoredResponse(response, [InputItem(role="user", content="hi")], owner="alice")
    assert msgspec.json.decode(msgspec.json.encode(stored), type=StoredResponse) == stored

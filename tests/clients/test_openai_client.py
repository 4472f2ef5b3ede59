"""The official ``openai`` client: chat completions (JSON and SSE) and the Responses API."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.clients import scenarios as s

pytestmark = pytest.mark.clients


CHAT_TOOL = {
    "type": "function",
    "function": {"name": "get_local_time", "description": s.LOCAL_TIME_DESCRIPTION, "parameters": s.LOCAL_TIME_SCHEMA},
}
RESPONSES_TOOL = {
    "type": "function",
    "name": "get_local_time",
    "description": s.LOCAL_TIME_DESCRIPTION,
    "parameters": s.LOCAL_TIME_SCHEMA,
    "strict": True,
}


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def usage_of(usage: Any) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}


# -- chat completions ----------------------------------------------------------------------


def test_chat_client_tool_round_trip(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_client_tool(fake)
    messages: list[Any] = [{"role": "user", "content": "What time is it in UTC?"}]
    first = client.chat.completions.create(model=agent, messages=messages, tools=[CHAT_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == s.CLIENT_CALL_ID and call.function.name == "get_local_time"
    assert usage_of(first.usage) == {**s.USAGE_TOOL_ROUND, "total_tokens": 18}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": s.get_local_time(**json.loads(call.function.arguments))}]
    second = client.chat.completions.create(model=agent, messages=messages, tools=[CHAT_TOOL])
    assert second.choices[0].message.content == s.CLIENT_ANSWER
    assert usage_of(second.usage) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_client_result_reached_upstream(fake)


def test_chat_client_tool_round_trip_streamed(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_client_tool(fake)
    messages: list[Any] = [{"role": "user", "content": "What time is it in UTC?"}]
    chunks = list(client.chat.completions.create(
        model=agent, messages=messages, tools=[CHAT_TOOL], stream=True, stream_options={"include_usage": True}))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id == s.CLIENT_CALL_ID and deltas[0].function.name == "get_local_time"
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    messages += [{"role": "assistant", "tool_calls": [{"id": s.CLIENT_CALL_ID, "type": "function",
                                                       "function": {"name": "get_local_time", "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": s.CLIENT_CALL_ID, "content": s.get_local_time(**json.loads(arguments))}]
    final = list(client.chat.completions.create(
        model=agent, messages=messages, tools=[CHAT_TOOL], stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in final if c.choices) == s.CLIENT_ANSWER
    s.assert_client_result_reached_upstream(fake)


def test_chat_server_tool(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_server_tool(fake)
    reply = client.chat.completions.create(model=agent, messages=[{"role": "user", "content": "Weather in Oslo?"}])
    assert reply.choices[0].message.content == s.SERVER_ANSWER
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
    assert usage_of(reply.usage) == s.TOTAL_TWO_CALLS
    s.assert_server_tool_ran(fake)


def test_chat_mixed_turn(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_mixed(fake)
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo, and the time in UTC?"}]
    first = client.chat.completions.create(model=agent, messages=messages, tools=[CHAT_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    client_calls = [c for c in choice.message.tool_calls or () if c.function.name == "get_local_time"]
    assert len(client_calls) == 1 and json.loads(client_calls[0].function.arguments) == {"tz": "UTC"}
    messages.append(choice.message.model_dump(exclude_none=True))
    for call in choice.message.tool_calls or ():
        if call.function.name == "get_local_time":
            messages.append({"role": "tool", "tool_call_id": call.id, "content": s.get_local_time(**json.loads(call.function.arguments))})
    second = client.chat.completions.create(model=agent, messages=messages, tools=[CHAT_TOOL])
    assert second.choices[0].message.content == s.MIXED_ANSWER
    s.assert_mixed_turn_seen(fake)


def test_chat_structured_output(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_structured(fake)
    parsed = client.chat.completions.parse(
        model=agent, messages=[{"role": "user", "content": "The largest city of Norway?"}], response_format=s.City)
    assert parsed.choices[0].message.parsed == s.CITY
    s.assert_schema_reached_upstream(fake)


def test_chat_usage_streamed_once(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_server_tool(fake)
    chunks = list(client.chat.completions.create(
        model=agent, messages=[{"role": "user", "content": "Weather in Oslo?"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == s.SERVER_ANSWER
    reported = [usage_of(c.usage) for c in chunks if c.usage is not None]
    assert reported == [s.TOTAL_TWO_CALLS], "usage must be on exactly one chunk, the last (no choices)"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


# -- the Responses API -----------------------------------------------------------------------


def function_calls(response: Any) -> list[Any]:
    return [item for item in response.output if item.type == "function_call"]


def responses_usage(usage: Any) -> dict[str, int]:
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens, "total_tokens": usage.total_tokens}


def test_responses_client_tool_round_trip(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_client_tool(fake)
    inputs: list[Any] = [{"role": "user", "content": "What time is it in UTC?"}]
    first = client.responses.create(model=agent, input=inputs, tools=[RESPONSES_TOOL])  # type: ignore[arg-type]
    (call,) = function_calls(first)
    assert call.call_id == s.CLIENT_CALL_ID and call.name == "get_local_time"
    assert json.loads(call.arguments) == {"tz": "UTC"}
    assert responses_usage(first.usage) == {**s.USAGE_TOOL_ROUND, "total_tokens": 18}
    inputs += [item.model_dump(exclude_none=True) for item in first.output]
    inputs.append({"type": "function_call_output", "call_id": call.call_id, "output": s.get_local_time(**json.loads(call.arguments))})
    second = client.responses.create(model=agent, input=inputs, tools=[RESPONSES_TOOL])  # type: ignore[arg-type]
    assert second.output_text == s.CLIENT_ANSWER
    assert responses_usage(second.usage) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_client_result_reached_upstream(fake)


def test_responses_client_tool_round_trip_with_previous_response_id(client: openai.OpenAI, fake: Any, agent: str) -> None:
    """The stateful way: the follow-up sends only the tool's output and the previous id."""
    s.script_client_tool(fake)
    first = client.responses.create(model=agent, input="What time is it in UTC?", tools=[RESPONSES_TOOL])  # type: ignore[arg-type]
    (call,) = function_calls(first)
    second = client.responses.create(
        model=agent, previous_response_id=first.id, tools=[RESPONSES_TOOL],  # type: ignore[arg-type]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": s.get_local_time(**json.loads(call.arguments))}],
    )
    assert second.output_text == s.CLIENT_ANSWER
    s.assert_client_result_reached_upstream(fake)


def test_responses_server_tool(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_server_tool(fake)
    response = client.responses.create(model=agent, input="Weather in Oslo?")
    assert response.output_text == s.SERVER_ANSWER
    assert response.status == "completed" and not function_calls(response)
    assert responses_usage(response.usage) == s.TOTAL_TWO_CALLS
    s.assert_server_tool_ran(fake)


def test_responses_mixed_turn(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_mixed(fake)
    inputs: list[Any] = [{"role": "user", "content": "Weather in Oslo, and the time in UTC?"}]
    first = client.responses.create(model=agent, input=inputs, tools=[RESPONSES_TOOL])  # type: ignore[arg-type]
    mine = [c for c in function_calls(first) if c.name == "get_local_time"]
    assert len(mine) == 1 and json.loads(mine[0].arguments) == {"tz": "UTC"}
    inputs += [item.model_dump(exclude_none=True) for item in first.output]
    inputs += [{"type": "function_call_output", "call_id": c.call_id, "output": s.get_local_time(**json.loads(c.arguments))} for c in mine]
    second = client.responses.create(model=agent, input=inputs, tools=[RESPONSES_TOOL])  # type: ignore[arg-type]
    assert second.output_text == s.MIXED_ANSWER
    s.assert_mixed_turn_seen(fake)


def test_responses_structured_output(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_structured(fake)
    response = client.responses.parse(model=agent, input="The largest city of Norway?", text_format=s.City)
    assert response.output_parsed == s.CITY
    s.assert_schema_reached_upstream(fake)


def test_responses_streamed_usage_once(client: openai.OpenAI, fake: Any, agent: str) -> None:
    s.script_server_tool(fake)
    events = list(client.responses.create(model=agent, input="Weather in Oslo?", stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == s.SERVER_ANSWER
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1 and completed[0].response.output_text == s.SERVER_ANSWER
    assert responses_usage(completed[0].response.usage) == s.TOTAL_TWO_CALLS

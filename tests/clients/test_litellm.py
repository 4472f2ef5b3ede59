"""LiteLLM as a client: ``litellm.completion(model="openai/<agent>", api_base=..., api_key=...)``."""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest

from tests.clients import scenarios as s

pytestmark = [
    pytest.mark.clients,
    # LiteLLM's own pydantic models warn on import and on use; nothing to do with the server.
    pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*"),
]

TOOL = {
    "type": "function",
    "function": {"name": "get_local_time", "description": s.LOCAL_TIME_DESCRIPTION, "parameters": s.LOCAL_TIME_SCHEMA},
}


@pytest.fixture
def call(agent: str, base_url: str) -> Any:
    """``litellm.completion`` aimed at the served agent."""

    def complete(**kwargs: Any) -> Any:
        return litellm.completion(model=f"openai/{agent}", api_base=base_url, api_key="unused", num_retries=0, **kwargs)

    return complete


def usage_of(usage: Any) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}


def with_results(messages: list[Any], message: Any) -> list[Any]:
    """The conversation plus the model's message and the client's results for its calls."""
    calls = [c for c in message.tool_calls or () if c.function.name == "get_local_time"]
    return [
        *messages,
        {"role": "assistant", "content": message.content, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls or ()]},
        *({"role": "tool", "tool_call_id": c.id, "content": s.get_local_time(**json.loads(c.function.arguments))} for c in calls),
    ]


def test_client_tool_round_trip(call: Any, fake: Any) -> None:
    s.script_client_tool(fake)
    messages: list[Any] = [{"role": "user", "content": "What time is it in UTC?"}]
    first = call(messages=messages, tools=[TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls
    assert tool_call.id == s.CLIENT_CALL_ID and tool_call.function.name == "get_local_time"
    assert usage_of(first.usage) == {**s.USAGE_TOOL_ROUND, "total_tokens": 18}
    final = call(messages=with_results(messages, choice.message), tools=[TOOL])
    assert final.choices[0].message.content == s.CLIENT_ANSWER
    assert usage_of(final.usage) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_client_result_reached_upstream(fake)


def test_client_tool_round_trip_streamed(call: Any, fake: Any) -> None:
    s.script_client_tool(fake)
    messages: list[Any] = [{"role": "user", "content": "What time is it in UTC?"}]
    chunks = list(call(messages=messages, tools=[TOOL], stream=True, stream_options={"include_usage": True}))
    first = litellm.stream_chunk_builder(chunks, messages=messages)
    assert first is not None
    (tool_call,) = first.choices[0].message.tool_calls
    assert tool_call.function.name == "get_local_time" and json.loads(tool_call.function.arguments) == {"tz": "UTC"}
    assert usage_of(first.usage) == {**s.USAGE_TOOL_ROUND, "total_tokens": 18}
    final = litellm.stream_chunk_builder(list(call(
        messages=with_results(messages, first.choices[0].message), tools=[TOOL], stream=True,
        stream_options={"include_usage": True})))
    assert final is not None and final.choices[0].message.content == s.CLIENT_ANSWER
    s.assert_client_result_reached_upstream(fake)


def test_server_tool(call: Any, fake: Any) -> None:
    s.script_server_tool(fake)
    reply = call(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    assert reply.choices[0].message.content == s.SERVER_ANSWER
    assert usage_of(reply.usage) == s.TOTAL_TWO_CALLS
    s.assert_server_tool_ran(fake)


def test_server_tool_streamed_usage_once(call: Any, fake: Any) -> None:
    s.script_server_tool(fake)
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    chunks = list(call(messages=messages, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == s.SERVER_ANSWER
    with_usage = [usage_of(c.usage) for c in chunks if getattr(c, "usage", None) is not None]
    assert with_usage[-1] == s.TOTAL_TWO_CALLS
    built = litellm.stream_chunk_builder(chunks, messages=messages)
    assert built is not None and usage_of(built.usage) == s.TOTAL_TWO_CALLS, "streamed usage must be counted once"
    s.assert_server_tool_ran(fake)


def test_mixed_turn(call: Any, fake: Any) -> None:
    s.script_mixed(fake)
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo, and the time in UTC?"}]
    first = call(messages=messages, tools=[TOOL])
    assert [c.function.name for c in first.choices[0].message.tool_calls] == ["get_local_time"]
    final = call(messages=with_results(messages, first.choices[0].message), tools=[TOOL])
    assert final.choices[0].message.content == s.MIXED_ANSWER
    s.assert_mixed_turn_seen(fake)


def test_structured_output(call: Any, fake: Any) -> None:
    s.script_structured(fake)
    reply = call(messages=[{"role": "user", "content": "The largest city of Norway?"}], response_format=s.City)
    assert s.City.model_validate_json(reply.choices[0].message.content) == s.CITY
    assert usage_of(reply.usage) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_schema_reached_upstream(fake)

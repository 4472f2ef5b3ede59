"""OpenAI shapes to Messages API bodies and back, field by field (no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from anthropic_helpers import config

from robutler_plugin_anthropic.translate import parse_message, request_body
from robutler_specs import BadRequest, LLMCall, Message, ToolDefinition

WEATHER = msgspec.convert({"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}, ToolDefinition)


def body(messages: list[dict[str, Any]], *, params: dict[str, Any] | None = None, tools: list[ToolDefinition] = (),  # type: ignore[assignment]
         stream: bool = False, **cfg: Any) -> dict[str, Any]:
    call = LLMCall(model="anthropic/claude-x", messages=msgspec.convert(messages, list[Message]),
                   tools=list(tools), params=params or {})
    return dict(json.loads(request_body(call, config(**cfg), stream=stream)))


def call(id: str, name: str = "get_weather", arguments: str = '{"city": "Oslo"}') -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_minimal_body() -> None:
    sent = body([{"role": "user", "content": "hi"}])
    assert sent == {"model": "claude-x", "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}]}
    assert body([{"role": "user", "content": "hi"}], stream=True)["stream"] is True


def test_every_system_message_goes_to_system_in_order() -> None:
    sent = body([{"role": "system", "content": "One."}, {"role": "user", "content": "hi"},
                 {"role": "developer", "content": [{"type": "text", "text": "Two."}]},
                 {"role": "assistant", "content": "yo"}, {"role": "system", "content": "Three."},
                 {"role": "user", "content": "again"}])
    assert sent["system"] == [{"type": "text", "text": t} for t in ("One.", "Two.", "Three.")]
    assert sent["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                                {"role": "user", "content": "again"}]
    assert body([{"role": "system", "content": "Only."}, {"role": "user", "content": "x"}])["system"] == "Only."


def test_content_parts_and_images() -> None:
    sent = body([{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg", "detail": "low"}},
        {"type": "text", "text": "", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be precise.", "cache_control": {"type": "ephemeral"}},
    ]}])
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
        {"type": "text", "text": "Be precise.", "cache_control": {"type": "ephemeral"}},
    ]


@pytest.mark.parametrize(("part", "param"), [
    ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "messages[0].content[0].type"),
    ({"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}, "messages[0].content[0].image_url.url"),
])
def test_unsupported_parts_are_a_clear_400(part: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        body([{"role": "user", "content": [part]}])
    assert caught.value.param == param and caught.value.plugin == "anthropic"


def test_tool_calls_and_results_map_to_blocks_merged_into_alternating_turns() -> None:
    sent = body([
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": "Looking.", "tool_calls": [call("c1"), call("c2", arguments='{"city": "Rome"}')]},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "Rainy"}]},
        {"role": "user", "content": "And tomorrow?"},
    ])
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == [
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "c2", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "Sunny"},
        {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "Rainy"}]},
        {"type": "text", "text": "And tomorrow?"},
    ]


def test_results_come_first_in_their_turn_and_same_roles_merge() -> None:
    sent = body([
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
        {"role": "assistant", "tool_calls": [call("c1", arguments="")]},
        {"role": "assistant", "content": ""},  # empty: nothing to send
        {"role": "user", "content": "an aside"}, {"role": "tool", "tool_call_id": "c1", "content": ""},
    ])
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1"}, {"type": "text", "text": "an aside"}]},
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"a string"'])
def test_tool_arguments_that_are_not_a_json_object_are_a_clear_400(arguments: str) -> None:
    with pytest.raises(BadRequest) as caught:
        body([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call("c9", arguments=arguments)]}])
    error = caught.value
    assert error.status == 400 and error.param == "messages[1].tool_calls[0].function.arguments"
    assert "'c9'" in error.message and "JSON object" in error.message


def test_a_tool_result_without_its_call_id_is_a_400() -> None:
    with pytest.raises(BadRequest, match="tool_call_id"):
        body([{"role": "user", "content": "x"}, {"role": "tool", "content": "orphan"}])


def test_tools_and_tool_choice() -> None:
    user = [{"role": "user", "content": "x"}]
    sent = body(user, tools=[WEATHER])
    assert sent["tools"] == [{"name": "get_weather", "description": "Weather of a city",
                              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    bare = msgspec.convert({"type": "function", "function": {"name": "ping"}}, ToolDefinition)
    assert body(user, tools=[bare])["tools"] == [{"name": "ping", "input_schema": {"type": "object", "properties": {}}}]
    choices = {
        "auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"},
        json.dumps({"type": "function", "function": {"name": "get_weather"}}): {"type": "tool", "name": "get_weather"},
    }
    for choice, expected in choices.items():
        value = json.loads(choice) if choice.startswith("{") else choice
        assert body(user, tools=[WEATHER], params={"tool_choice": value})["tool_choice"] == expected
    assert body(user, tools=[WEATHER], params={"parallel_tool_calls": False})["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": True}
    assert body(user, tools=[WEATHER], params={"tool_choice": "required", "parallel_tool_calls": False})["tool_choice"] == {
        "type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in body(user, params={"tool_choice": "auto"})  # no tools: nothing to choose
    with pytest.raises(BadRequest) as caught:
        body(user, tools=[WEATHER], params={"tool_choice": "sometimes"})
    assert caught.value.param == "tool_choice"


def test_parameters_translated_dropped_and_passed_through() -> None:
    user = [{"role": "user", "content": "x"}]
    sent = body(user, params={
        "max_tokens": 50, "stop": "END", "temperature": 0.2, "top_p": 0.9, "user": "u-1", "seed": 7,
        "presence_penalty": 0.5, "frequency_penalty": 0.1, "response_format": {"type": "json_object"},
    }, default_params={"top_k": 5, "temperature": 1.0, "n": 1, "service_tier": "auto"})
    assert sent == {"model": "claude-x", "max_tokens": 50, "messages": user, "stop_sequences": ["END"],
                    "metadata": {"user_id": "u-1"}, "top_k": 5, "service_tier": "auto"}
    # temperature and top_p only with an API version from before 2026-10-21 (clamped to 1)
    old = body(user, params={"temperature": 1.5, "top_p": 0.9}, api_version="2023-06-01")
    assert (old["temperature"], old["top_p"]) == (1.0, 0.9)
    assert body(user, params={"max_completion_tokens": 20, "max_tokens": 50, "stop": ["a", "b"]})["max_tokens"] == 20
    assert body(user, params={"stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]
    assert body(user, max_tokens=99)["max_tokens"] == 99
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    structured = body(user, params={"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert structured["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_a_text_answer() -> None:
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x-2025",
              "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                          {"type": "text", "text": "Hello "}, {"type": "text", "text": "there."}],
              "stop_reason": "end_turn", "stop_sequence": None,
              "usage": {"input_tokens": 10, "output_tokens": 4}}
    result = parse_message(json.dumps(answer).encode(), "claude-x")
    assert (result.message.content, result.message.tool_calls, result.finish_reason) == ("Hello there.", None, "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (10, 4, 14)
    assert result.usage.cached_tokens == 0 and result.model == "claude-x-2025"
    assert "prompt_tokens_details" not in json.loads(msgspec.json.encode(result.usage))


def test_a_tool_use_answer_with_cache_usage() -> None:
    answer = {"content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
              "stop_reason": "tool_use",
              "usage": {"input_tokens": 3, "output_tokens": 9, "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 20}}
    result = parse_message(json.dumps(answer).encode(), "claude-x")
    (tc,) = result.message.tool_calls or []
    assert (tc.id, tc.function.name, json.loads(tc.function.arguments)) == ("toolu_1", "get_weather", {"city": "Oslo"})
    assert result.message.content is None and result.finish_reason == "tool_calls" and result.model == "claude-x"
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (123, 9, 132)
    assert (usage.cached_tokens, usage.cache_creation_tokens) == (100, 20)


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
])
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    answer = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert parse_message(json.dumps(answer).encode(), "m").finish_reason == finish


def test_an_unexpected_body_is_a_provider_error() -> None:
    from robutler_specs import ProviderError

    with pytest.raises(ProviderError, match="unexpected body"):
        parse_message(b'{"no": "content"}', "m")

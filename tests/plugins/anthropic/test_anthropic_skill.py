"""The anthropic skill answers ``anthropic/...`` calls through the SDK against FakeAnthropic:
completions, streams, forwarded params, connections."""

from __future__ import annotations

import asyncio
import importlib.metadata

import msgspec
import pytest
from anthropic_helpers import AGENT, assemble, call_and_ctx, collect, config, started

import robutler_plugin_anthropic
from robutler_kernel.testing import FakeAnthropic
from robutler_plugin_anthropic import AnthropicConfig, AnthropicSkill
from robutler_plugin_anthropic.config import ANTHROPIC_BASE_URL, DEFAULT_MAX_TOKENS, PLACEHOLDER_API_KEY
from robutler_specs import ToolDefinition

WEATHER = msgspec.convert({"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}, ToolDefinition)


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["anthropic"] == "robutler_plugin_anthropic"
    assert robutler_plugin_anthropic.robutler_skills() == [AnthropicSkill]
    assert (AnthropicSkill.name, AnthropicSkill.provider, AnthropicSkill.Config) == ("anthropic", "anthropic", AnthropicConfig)
    assert not hasattr(robutler_plugin_anthropic, "robutler_embed")  # Anthropic has no embeddings API


def test_config_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    plain = msgspec.convert({}, AnthropicConfig)
    assert (plain.api_key, plain.base_url, plain.max_tokens) == (PLACEHOLDER_API_KEY, ANTHROPIC_BASE_URL, DEFAULT_MAX_TOKENS)
    assert DEFAULT_MAX_TOKENS == 4096
    assert (plain.timeout, plain.connect_timeout, plain.http_client, plain.api_version) == (300.0, 5.0, "aiohttp", None)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://proxy.local:8080")
    from_env = msgspec.convert({}, AnthropicConfig)
    assert (from_env.api_key, from_env.base_url) == ("sk-ant-env", "http://proxy.local:8080")


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    for bad, field in [({"api_kee": "x"}, "api_kee"), ({"max_retries": 2}, "max_retries"),
                       ({"timeout": 0}, "timeout"), ({"max_tokens": 0}, "max_tokens"),
                       ({"http_client": "requests"}, "http_client")]:
        with pytest.raises(msgspec.ValidationError, match=field):
            msgspec.convert(bad, AnthropicConfig)


async def test_other_providers_are_left_alone(fake: FakeAnthropic) -> None:
    async with started(fake) as skill:
        ctx, call = call_and_ctx(model="openai/gpt-x")
        assert await skill.llm_complete(ctx, call) is None
        assert await skill.llm_stream(ctx, call) is None
    assert fake.requests == []


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
async def test_completion_through_the_sdk(fake: FakeAnthropic, http_client: str) -> None:
    fake.api_key = "test-key"  # the fake refuses any other key
    fake.add_reply("Hi there!", model="claude-x-2025",
                   usage={"input_tokens": 12, "output_tokens": 3, "cache_read_input_tokens": 40})
    async with started(fake, http_client=http_client) as skill:
        result = await skill.llm_complete(*call_and_ctx("hello"))
    assert result is not None
    assert (result.message.role, result.message.content, result.finish_reason) == ("assistant", "Hi there!", "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (52, 3, 55)
    assert result.usage.cached_tokens == 40 and result.model == "claude-x-2025"
    sent = fake.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["anthropic-version"] == "2026-10-21"  # the SDK's own
    assert sent.json == {"model": "claude-x", "max_tokens": 4096, "system": "Be brief.",
                         "messages": [{"role": "user", "content": "hello"}]}


async def test_params_and_tools_are_translated_over_default_params(fake: FakeAnthropic) -> None:
    params = {"temperature": 0.2, "max_tokens": 50, "stop": ["\n\n"], "seed": 7, "user": "u-1",
              "tool_choice": "required", "parallel_tool_calls": False, "presence_penalty": None}
    async with started(fake, default_params={"max_tokens": 10, "service_tier": "auto"}) as skill:
        await skill.llm_complete(*call_and_ctx(params=params, tools=[WEATHER]))
    sent = fake.last_request.json
    assert sent["max_tokens"] == 50 and sent["stop_sequences"] == ["\n\n"] and sent["service_tier"] == "auto"
    assert sent["metadata"] == {"user_id": "u-1"}
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["tools"] == [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    assert not {"temperature", "seed", "presence_penalty"} & set(sent)  # refused by the API version, or no equivalent


async def test_an_older_api_version_is_sent_with_sampling_params(fake: FakeAnthropic) -> None:
    async with started(fake, api_version="2023-06-01") as skill:
        await skill.llm_complete(*call_and_ctx(params={"temperature": 0.3, "top_p": 0.8}))
    sent = fake.last_request
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert (sent.json["temperature"], sent.json["top_p"]) == (0.3, 0.8)


async def test_tool_use_in_a_completion(fake: FakeAnthropic) -> None:
    fake.add_reply("Checking.", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}, "id": "toolu_1"}])
    async with started(fake) as skill:
        result = await skill.llm_complete(*call_and_ctx(tools=[WEATHER]))
    assert result is not None and result.finish_reason == "tool_calls" and result.message.content == "Checking."
    (tc,) = result.message.tool_calls or []
    assert (tc.id, tc.function.name, msgspec.json.decode(tc.function.arguments)) == ("toolu_1", "get_weather", {"city": "Oslo"})


async def test_stream_text_finish_and_usage(fake: FakeAnthropic) -> None:
    fake.add_reply("one two three", usage={"input_tokens": 4, "output_tokens": 3, "cache_creation_input_tokens": 6})
    async with started(fake) as skill:
        stream = await skill.llm_stream(*call_and_ctx(stream=True))
        assert stream is not None
        chunks = await collect(stream)
    got = assemble(chunks)
    assert (got["text"], got["finish_reason"]) == ("one two three", "stop")
    assert [c.choices[0].delta.content for c in chunks][1:4] == ["one ", "two ", "three"]
    usage = got["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.cache_creation_tokens) == (10, 3, 13, 6)
    assert fake.last_request.json["stream"] is True


async def test_stream_tool_use_deltas(fake: FakeAnthropic) -> None:
    fake.add_reply("Let me see.", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo, Norway"}, "id": "toolu_a"},
                                             {"name": "get_weather", "input": {}, "id": "toolu_b"}])
    async with started(fake) as skill:
        chunks = await collect(await skill.llm_stream(*call_and_ctx(stream=True, tools=[WEATHER])))
    got = assemble(chunks)
    assert got["text"] == "Let me see." and got["finish_reason"] == "tool_calls"
    assert got["tool_calls"] == [("toolu_a", "get_weather", {"city": "Oslo, Norway"}), ("toolu_b", "get_weather", {})]
    assert got["indexes"] == [0, 1]


async def test_finished_streams_reuse_the_connection(fake: FakeAnthropic) -> None:
    async with started(fake) as skill:
        for _ in range(3):
            await collect(await skill.llm_stream(*call_and_ctx(stream=True)))
            await skill.llm_complete(*call_and_ctx())
    assert fake.connections_opened == 1


async def test_aclose_cancels_the_upstream_request(fake: FakeAnthropic) -> None:
    fake.add_reply("a b c d e f g h", chunk_delay=0.05)
    async with started(fake) as skill:
        stream = await skill.llm_stream(*call_and_ctx(stream=True))
        assert stream is not None
        first = await anext(stream)
        assert first.choices[0].delta.role == "assistant"
        await stream.aclose()  # type: ignore[attr-defined]
        assert await fake.wait_cancelled_async(5), "the fake did not see the disconnect"
    assert fake.cancelled == 1


async def test_a_hanging_stream_is_cancelled_too(fake: FakeAnthropic) -> None:
    fake.add_reply("a b c d", hang_after=5)
    async with started(fake) as skill:
        stream = await skill.llm_stream(*call_and_ctx(stream=True))
        assert stream is not None
        await anext(stream)
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        assert await fake.wait_cancelled_async(5)


async def test_the_client_is_created_lazily_and_closed_by_stop(fake: FakeAnthropic) -> None:
    skill = AnthropicSkill(config(fake), AGENT)
    assert skill._client is None
    assert await skill.llm_complete(*call_and_ctx()) is not None
    client = skill.client
    await skill.stop()
    assert skill._client is None and client.is_closed()


async def test_a_cancelled_call_cancels_the_upstream_request(fake: FakeAnthropic) -> None:
    fake.add_reply("slow", delay=5)
    async with started(fake) as skill:
        call = asyncio.create_task(skill.llm_complete(*call_and_ctx()))
        assert await fake.wait_requests_async()  # the upstream has it
        call.cancel()  # what a client disconnect does to the kernel's task
        with pytest.raises(asyncio.CancelledError):
            await call
        assert await fake.wait_cancelled_async(5)

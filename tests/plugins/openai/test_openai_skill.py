"""The openai skill answers ``openai/...`` calls: completions, streams, forwarded params."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json

import msgspec
import pytest
from openai_helpers import AGENT, KERNEL, call_and_ctx, collect, config, run, started

import robutler_plugin_openai
from robutler_kernel.testing import FakeOpenAI
from robutler_plugin_openai import OpenAIConfig, OpenAISkill
from robutler_plugin_openai.config import OPENAI_BASE_URL, PLACEHOLDER_API_KEY
from robutler_specs import ToolDefinition


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["openai"] == "robutler_plugin_openai"
    assert robutler_plugin_openai.robutler_skills() == [OpenAISkill]
    assert (OpenAISkill.name, OpenAISkill.provider, OpenAISkill.Config) == ("openai", "openai", OpenAIConfig)


def test_config_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    plain = msgspec.convert({}, OpenAIConfig)
    assert (plain.api_key, plain.base_url) == (PLACEHOLDER_API_KEY, OPENAI_BASE_URL)
    assert (plain.timeout, plain.connect_timeout, plain.default_params) == (300.0, 5.0, {})
    assert plain.transport == "direct"  # the fast path is the default
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    from_env = msgspec.convert({}, OpenAIConfig)
    assert (from_env.api_key, from_env.base_url) == ("sk-env", "http://localhost:11434/v1")


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(msgspec.ValidationError, match="api_kee"):
        msgspec.convert({"api_kee": "x"}, OpenAIConfig)
    with pytest.raises(msgspec.ValidationError, match="timeout"):
        msgspec.convert({"timeout": 0}, OpenAIConfig)


def test_other_providers_are_left_alone(fake: FakeOpenAI) -> None:
    async def body() -> None:
        async with started(fake) as skill:
            ctx, call = call_and_ctx(model="anthropic/claude")
            assert await skill.llm_complete(ctx, call) is None
            assert await skill.llm_stream(ctx, call) is None
    run(body())
    assert fake.requests == []


def test_completion(fake: FakeOpenAI) -> None:
    fake.add_reply("Hi there!", usage={"prompt_tokens": 12, "completion_tokens": 3}, model="gpt-x-2024")

    async def body() -> None:
        async with started(fake) as skill:
            result = await skill.llm_complete(*call_and_ctx("hello"))
            assert result is not None
            assert (result.message.role, result.message.content) == ("assistant", "Hi there!")
            assert result.finish_reason == "stop"
            assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (12, 3, 15)
            assert result.model == "gpt-x-2024"
    run(body())
    sent = fake.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.json["model"] == "gpt-x"
    assert sent.json["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    assert "stream" not in sent.json and "tools" not in sent.json


def test_params_and_tools_are_forwarded_over_default_params(fake: FakeOpenAI) -> None:
    tool = msgspec.convert({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}, ToolDefinition)
    params = {
        "temperature": 0.2, "max_tokens": 50, "top_p": 0.9, "stop": ["\n\n"], "seed": 7, "user": "u-1",
        "tool_choice": "auto", "response_format": {"type": "json_object"}, "presence_penalty": None,
    }

    async def body() -> None:
        async with started(fake, default_params={"temperature": 1.0, "frequency_penalty": 0.5}) as skill:
            await skill.llm_complete(*call_and_ctx(params=params, tools=[tool]))
    run(body())
    sent = fake.last_request.json
    assert {k: sent[k] for k in params if k != "presence_penalty"} == {k: v for k, v in params.items() if v is not None}
    assert "presence_penalty" not in sent  # None means "not set"
    assert sent["frequency_penalty"] == 0.5  # a default the call did not override
    assert sent["tools"] == [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def test_tool_calls_in_a_completion(fake: FakeOpenAI) -> None:
    fake.add_reply(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}, "id": "call_1"}])

    async def body() -> None:
        async with started(fake) as skill:
            result = await skill.llm_complete(*call_and_ctx())
            assert result is not None and result.finish_reason == "tool_calls"
            (tc,) = result.message.tool_calls or []
            assert (tc.id, tc.function.name, json.loads(tc.function.arguments)) == ("call_1", "lookup", {"q": "x"})
    run(body())


def test_stream_text_finish_and_usage(fake: FakeOpenAI) -> None:
    fake.add_reply("one two three", usage={"prompt_tokens": 4, "completion_tokens": 3})

    async def body() -> None:
        async with started(fake) as skill:
            stream = await skill.llm_stream(*call_and_ctx(stream=True))
            assert stream is not None
            chunks = await collect(stream)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "one two three"
            finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            assert finishes == ["stop"]
            usage = [c.usage for c in chunks if c.usage]
            assert len(usage) == 1 and (usage[0].prompt_tokens, usage[0].completion_tokens, usage[0].total_tokens) == (4, 3, 7)
    run(body())
    sent = fake.last_request.json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_stream_tool_call_deltas(fake: FakeOpenAI) -> None:
    fake.add_reply(tool_calls=[
        {"name": "lookup", "arguments": {"q": "a b c"}, "id": "call_a"},
        {"name": "other", "arguments": "{}", "id": "call_b"},
    ])

    async def body() -> None:
        async with started(fake) as skill:
            chunks = await collect(await skill.llm_stream(*call_and_ctx(stream=True)))
            deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
            firsts = [d for d in deltas if d.id]
            assert [(d.index, d.id, d.function and d.function.name) for d in firsts] == [(0, "call_a", "lookup"), (1, "call_b", "other")]
            args = {i: "".join(d.function.arguments or "" for d in deltas if d.index == i and d.function) for i in (0, 1)}
            assert json.loads(args[0]) == {"q": "a b c"} and json.loads(args[1]) == {}
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    run(body())


def test_finished_streams_reuse_the_connection(fake: FakeOpenAI) -> None:
    async def body() -> None:
        async with started(fake) as skill:
            for _ in range(3):
                await collect(await skill.llm_stream(*call_and_ctx(stream=True)))
                await skill.llm_complete(*call_and_ctx())
    run(body())
    assert fake.connections_opened == 1


def test_aclose_cancels_the_upstream_request(fake: FakeOpenAI) -> None:
    fake.add_reply("a b c d e f g h", chunk_delay=0.05)

    async def body() -> None:
        async with started(fake) as skill:
            stream = await skill.llm_stream(*call_and_ctx(stream=True))
            assert stream is not None
            first = await anext(stream)
            assert first.choices[0].delta.role == "assistant"
            await stream.aclose()  # type: ignore[attr-defined]
            assert await fake.wait_cancelled_async(5), "the fake did not see the disconnect"
    run(body())
    assert fake.cancelled == 1


def test_a_hanging_stream_is_cancelled_too(fake: FakeOpenAI) -> None:
    fake.add_reply("a b c d", hang_after=2)

    async def body() -> None:
        async with started(fake) as skill:
            stream = await skill.llm_stream(*call_and_ctx(stream=True))
            assert stream is not None
            await anext(stream)
            await anext(stream)
            await stream.aclose()  # type: ignore[attr-defined]
            assert await fake.wait_cancelled_async(5)
    run(body())


def test_the_client_is_created_lazily_and_closed_by_stop(fake: FakeOpenAI) -> None:
    async def body() -> None:
        skill = OpenAISkill(config(fake), AGENT)
        skill.kernel = KERNEL
        assert skill._client is None
        assert await skill.llm_complete(*call_and_ctx()) is not None
        client = skill.client
        await skill.stop()
        assert skill._client is None and client.is_closed()
    run(body())


def test_a_cancelled_call_cancels_the_upstream_request(fake: FakeOpenAI) -> None:
    fake.add_reply("slow", delay=5)

    async def body() -> None:
        async with started(fake) as skill:
            call = asyncio.create_task(skill.llm_complete(*call_and_ctx()))
            assert await fake.wait_requests_async()  # the upstream has it
            call.cancel()  # what a client disconnect does to the kernel's task
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await fake.wait_cancelled_async(5)
    run(body())

"""The plugin inside a kernel: an agent on ``anthropic/...`` behind Robutler's OpenAI API,
called with the official ``openai`` client over real HTTP (and as a library), with
FakeAnthropic upstream. The scenarios of the openai plugin's kernel and end-to-end tests:
answers, streams, parameters, cache tokens, the internal tool loop, client tools (JSON and
streamed), and routing by model prefix next to the openai plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import robutler_plugin_anthropic
import robutler_plugin_openai
from robutler_kernel.testing import FakeAnthropic, FakeOpenAI, LiveServer, make_kernel

CLIENT_TOOL = {"type": "function", "function": {
    "name": "get_local_time", "description": "Runs on the client",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}
USER = [{"role": "user", "content": "Weather in Oslo?"}]


def agents(fake: FakeAnthropic) -> dict[str, Any]:
    skill = {"api_key": "test-key", "base_url": fake.base_url, "timeout": 5}
    return {"bot": {"model": "anthropic/claude-x", "instructions": "Be kind.", "retry": {"attempts": 1},
                    "tools": ["anthropic_helpers:get_weather"], "skills": {"anthropic": skill}}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="test-key") as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream: FakeAnthropic) -> Iterator[str]:
    with LiveServer(make_kernel(agents(upstream), plugins=[robutler_plugin_anthropic])) as live:
        yield live.url


@pytest.fixture
def fake(upstream: FakeAnthropic) -> FakeAnthropic:
    upstream.reset()
    return upstream


@pytest.fixture
def client(server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=10) as sdk:
        yield sdk


def test_completion_with_params_and_system_prompt(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.add_reply("Hello!", usage={"input_tokens": 5, "output_tokens": 1})
    completion = client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=64, stop=["END"], user="u-7", seed=3)
    assert completion.choices[0].message.content == "Hello!" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.total_tokens) == (5, 6)
    sent = fake.last_request.json
    assert sent["system"] == "Be kind." and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert (sent["model"], sent["max_tokens"], sent["stop_sequences"], sent["metadata"]) == ("claude-x", 64, ["END"], {"user_id": "u-7"})
    assert "seed" not in sent
    assert [t["name"] for t in sent["tools"]] == ["get_weather"]


def test_streaming(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.add_reply("one two three", usage={"input_tokens": 5, "output_tokens": 3})
    chunks = list(client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "count"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].usage is not None and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 3)
    assert fake.last_request.json["stream"] is True


def test_cache_tokens_are_reported_and_recorded(upstream: FakeAnthropic) -> None:
    import asyncio

    upstream.reset()
    usage = {"input_tokens": 4, "output_tokens": 2, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 8}
    upstream.add_reply("cached", usage=usage)
    upstream.add_reply("cached stream", usage=usage)

    async def body() -> None:
        kernel = make_kernel(agents(upstream), plugins=[robutler_plugin_anthropic])
        await kernel.startup()
        try:
            agent = kernel.agent("bot")
            assert agent is not None
            ctx = agent.context([{"role": "user", "content": "hi"}])
            completion = await agent.complete(ctx)
            assert completion.usage.prompt_tokens == 72 and completion.usage.completion_tokens == 2
            assert (completion.usage.cached_tokens, completion.usage.cache_creation_tokens) == (60, 8)
            assert (ctx.usage[0].cache_read_tokens, ctx.usage[0].cache_write_tokens, ctx.usage[0].plugin) == (60, 8, "anthropic")
            chunks = [c async for c in agent.run_streaming([{"role": "user", "content": "hi"}])]
            final = chunks[-1].usage
            assert final and final.prompt_tokens == 72 and final.cached_tokens == 60
        finally:
            await kernel.shutdown()
    asyncio.run(body())


def test_internal_tool_loop(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.add_reply(tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}, "id": "toolu_w"}],
                   usage={"input_tokens": 10, "output_tokens": 5})
    fake.add_reply("It is sunny in Oslo.", usage={"input_tokens": 20, "output_tokens": 6})
    completion = client.chat.completions.create(model="bot", messages=USER)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "It is sunny in Oslo."
    assert completion.usage is not None and completion.usage.total_tokens == 41  # summed over both calls
    second = fake.requests[-1].json
    assert second["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_w", "content": "Sunny in Oslo"}]},
    ]


def test_internal_tool_loop_streaming(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.add_reply("Let me check.", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}},
                                               {"name": "get_weather", "input": {"city": "Rome"}}])
    fake.add_reply("Sunny in both.")
    chunks = list(client.chat.completions.create(model="bot", messages=USER, stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).endswith("Sunny in both.")
    results = fake.requests[-1].json["messages"][-1]["content"]
    assert [r["content"] for r in results] == ["Sunny in Oslo", "Sunny in Rome"]


def test_client_tool_round_trip(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.add_reply(tool_uses=[{"name": "get_local_time", "input": {"tz": "UTC"}, "id": "toolu_client_1"}])
    first = client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "Time?"}], tools=[CLIENT_TOOL])  # type: ignore[list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == "toolu_client_1" and json.loads(call.function.arguments) == {"tz": "UTC"}  # type: ignore[union-attr]
    assert {t["name"] for t in fake.last_request.json["tools"]} == {"get_weather", "get_local_time"}
    fake.add_reply("It is noon.")
    second = client.chat.completions.create(model="bot", tools=[CLIENT_TOOL], messages=[  # type: ignore[list-item]
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "tool_calls": [{"id": call.id, "type": "function",
                                              "function": {"name": "get_local_time", "arguments": call.function.arguments}}]},  # type: ignore[union-attr]
        {"role": "tool", "tool_call_id": call.id, "content": "12:00"},
    ])
    assert second.choices[0].message.content == "It is noon."
    assert fake.last_request.json["messages"][-1] == {
        "role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_client_1", "content": "12:00"}]}


def test_client_tool_calls_stream_with_stable_index_and_id(client: openai.OpenAI, fake: FakeAnthropic) -> None:
    fake.add_reply("Two zones.", tool_uses=[{"name": "get_local_time", "input": {"tz": "CET"}, "id": "toolu_s1"},
                                            {"name": "get_local_time", "input": {"tz": "PST"}, "id": "toolu_s2"}])
    chunks = list(client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "Time?"}],
                                                 tools=[CLIENT_TOOL], stream=True))  # type: ignore[list-item]
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    firsts = [d for d in deltas if d.id]
    assert [(d.index, d.id, d.function.name) for d in firsts] == [(0, "toolu_s1", "get_local_time"), (1, "toolu_s2", "get_local_time")]  # type: ignore[union-attr]
    args = {i: "".join(d.function.arguments or "" for d in deltas if d.index == i and d.function) for i in (0, 1)}
    assert (json.loads(args[0]), json.loads(args[1])) == ({"tz": "CET"}, {"tz": "PST"})
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_an_agent_with_both_providers_routes_by_model_prefix(upstream: FakeAnthropic) -> None:
    upstream.reset()
    with FakeOpenAI() as openai_fake:
        skills = {"anthropic": {"api_key": "test-key", "base_url": upstream.base_url},
                  "openai": {"api_key": "sk-o", "base_url": openai_fake.base_url}}
        agents = {
            "duo": {"model": "anthropic/claude-x", "allowed_models": ["openai/gpt-x"], "skills": skills},
            "oai": {"model": "openai/gpt-x", "skills": skills},
        }
        kernel = make_kernel(agents, plugins=[robutler_plugin_anthropic, robutler_plugin_openai])
        upstream.add_reply("from claude")
        openai_fake.add_reply("from gpt", times=2)
        with LiveServer(kernel) as live:
            sdk = openai.OpenAI(base_url=live.url, api_key="unused", max_retries=0)
            ask = [{"role": "user", "content": "who?"}]
            assert sdk.with_options(base_url=f"{live.url}/duo").chat.completions.create(
                model="duo", messages=ask).choices[0].message.content == "from claude"  # type: ignore[arg-type]
            assert sdk.with_options(base_url=f"{live.url}/duo").chat.completions.create(
                model="openai/gpt-x", messages=ask).choices[0].message.content == "from gpt"  # type: ignore[arg-type]
            assert sdk.with_options(base_url=f"{live.url}/oai").chat.completions.create(
                model="oai", messages=ask).choices[0].message.content == "from gpt"  # type: ignore[arg-type]
        assert [r.json["model"] for r in upstream.requests] == ["claude-x"]
        assert [r.json["model"] for r in openai_fake.requests] == ["gpt-x", "gpt-x"]


def test_an_overloaded_anthropic_falls_back_to_openai(upstream: FakeAnthropic) -> None:
    upstream.reset()
    with FakeOpenAI() as openai_fake:
        skills = {"anthropic": {"api_key": "test-key", "base_url": upstream.base_url},
                  "openai": {"api_key": "sk-o", "base_url": openai_fake.base_url}}
        agents = {"duo": {"model": ["anthropic/claude-x", "openai/gpt-x"], "skills": skills,
                          "retry": {"attempts": 2, "initial_delay": 0, "jitter": 0}}}
        kernel = make_kernel(agents, plugins=[robutler_plugin_anthropic, robutler_plugin_openai])
        upstream.add_error(529, "Overloaded", times=2)
        openai_fake.add_reply("gpt stands in", times=2)
        upstream.add_error(529, "Overloaded", times=2)
        with LiveServer(kernel) as live:
            sdk = openai.OpenAI(base_url=f"{live.url}/duo", api_key="unused", max_retries=0)
            ask = [{"role": "user", "content": "who?"}]
            answer = sdk.chat.completions.create(model="duo", messages=ask)  # type: ignore[arg-type]
            stream = sdk.chat.completions.create(model="duo", messages=ask, stream=True)  # type: ignore[arg-type]
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert answer.choices[0].message.content == streamed == "gpt stands in"
        assert [r.json["model"] for r in upstream.requests] == ["claude-x"] * 4  # two tries per request
        assert [r.json["model"] for r in openai_fake.requests] == ["gpt-x", "gpt-x"]

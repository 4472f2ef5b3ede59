"""Where OpenAI's own API sets the shape, ours matches: the answer message, usage counted
once in a stream, stream_options only with stream, an unknown model."""

from __future__ import annotations

import json

import openai

import robutler_plugin_scripted
from robutler_kernel.testing import kernel_client, make_kernel

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
USER = [{"role": "user", "content": "call lookup"}]


async def test_the_answer_message_has_content_and_refusal_and_tool_calls_only_when_called() -> None:
    async with kernel_client(make_kernel(plugins=[robutler_plugin_scripted])) as client:
        called = (await client.post("/assistant/chat/completions", json={"messages": USER, "tools": [TOOL]})).json()
        plain = (await client.post("/assistant/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})).json()
    message = called["choices"][0]["message"]
    assert message["content"] is None and message["refusal"] is None and message["tool_calls"][0]["function"]["name"] == "lookup"
    assert list(message) == ["role", "content", "refusal", "tool_calls"]
    assert plain["choices"][0]["message"] == {"role": "assistant", "content": "You said: hi", "refusal": None}
    assert plain["choices"][0]["logprobs"] is None and plain["object"] == "chat.completion"


async def test_streamed_usage_is_on_one_chunk_so_adding_every_chunk_counts_it_once() -> None:
    async with kernel_client(make_kernel(plugins=[robutler_plugin_scripted])) as http:
        client = openai.AsyncOpenAI(base_url="http://kernel/v1", api_key="unused", http_client=http)
        stream = await client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "one two three"}], stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        json_answer = await client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "one two three"}])
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0].choices == []
    assert sum(c.usage.total_tokens for c in with_usage if c.usage) == json_answer.usage.total_tokens  # type: ignore[union-attr]
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].usage is None


async def test_without_include_usage_the_finish_chunk_carries_it() -> None:
    async with kernel_client(make_kernel(plugins=[robutler_plugin_scripted])) as client:
        response = await client.post("/assistant/chat/completions", json={"messages": USER, "stream": True})
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert [e for e in events if e.get("usage")] == [events[-1]]


async def test_stream_options_without_stream_is_a_400() -> None:
    async with kernel_client(make_kernel(plugins=[robutler_plugin_scripted])) as client:
        response = await client.post("/assistant/chat/completions",
                                     json={"messages": USER, "stream_options": {"include_usage": True}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream_options"


async def test_an_unknown_model_is_openais_model_not_found() -> None:
    async with kernel_client(make_kernel(plugins=[robutler_plugin_scripted])) as client:
        response = await client.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error" and error["param"] == "model"

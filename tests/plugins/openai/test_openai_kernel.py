"""The plugin inside a kernel (built with the kernel's test kit): the agent loop, streaming
and ``kernel.embed`` reach the fake upstream through the openai skill."""

from __future__ import annotations

from typing import Any

from openai_helpers import run

import robutler_plugin_openai
from robutler_kernel.testing import FakeOpenAI, make_kernel


def agents(fake: FakeOpenAI) -> dict[str, Any]:
    skill = {"api_key": "k", "base_url": fake.base_url, "timeout": 2}
    return {"bot": {"model": "openai/gpt-x", "instructions": "Be kind.", "skills": {"openai": skill}}}


def test_an_agent_answers_through_the_plugin(fake: FakeOpenAI) -> None:
    fake.add_reply("Hello!", usage={"prompt_tokens": 5, "completion_tokens": 1})
    fake.add_reply("Streamed hello!")

    async def body() -> None:
        kernel = make_kernel(agents(fake), plugins=[robutler_plugin_openai])
        await kernel.startup()
        try:
            agent = kernel.agent("bot")
            completion = await agent.run([{"role": "user", "content": "hi"}], temperature=0.1)
            assert completion.choices[0].message.content == "Hello!"
            assert completion.usage.total_tokens == 6
            chunks = [c async for c in agent.run_streaming([{"role": "user", "content": "hi"}])]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streamed hello!"
            vectors = await kernel.embed(["x"])
            assert vectors is not None and len(vectors[0]) == 8
        finally:
            await kernel.shutdown()
    run(body())
    first = fake.requests[0].json
    assert first["temperature"] == 0.1 and first["messages"][0] == {"role": "system", "content": "Be kind."}
    assert fake.requests[1].json["stream"] is True


def test_cached_prompt_tokens_are_reported_and_recorded(fake: FakeOpenAI) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 6}}
    fake.add_reply("cached", usage=usage)
    fake.add_reply("cached stream", usage=usage)

    async def body() -> None:
        kernel = make_kernel(agents(fake), plugins=[robutler_plugin_openai])
        await kernel.startup()
        try:
            agent = kernel.agent("bot")
            ctx = agent.context([{"role": "user", "content": "hi"}])
            completion = await agent.complete(ctx)
            details = completion.usage.prompt_tokens_details
            assert completion.usage.prompt_tokens == 10 and details and details.cached_tokens == 6
            assert ctx.usage[0].cache_read_tokens == 6
            chunks = [c async for c in agent.run_streaming([{"role": "user", "content": "hi"}])]
            final = chunks[-1].usage
            assert final and final.prompt_tokens_details and final.prompt_tokens_details.cached_tokens == 6
        finally:
            await kernel.shutdown()
    run(body())

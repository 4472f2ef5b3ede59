"""Shared helpers of the anthropic plugin tests: a skill wired to a FakeAnthropic, an
assembler of streamed chunks, and a plain-Python tool for agents (``anthropic_helpers:get_weather``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from robutler_kernel.testing import FakeAnthropic
from robutler_plugin_anthropic import AnthropicConfig, AnthropicSkill
from robutler_specs import AgentSpec, ChatCompletionChunk, LLMCall, Message, RequestContext

AGENT = AgentSpec(name="t", model="anthropic/claude-x")


def config(fake: FakeAnthropic | None = None, **overrides: Any) -> AnthropicConfig:
    """A config pointing at ``fake``, with a short timeout."""
    values: dict[str, Any] = {"api_key": "test-key", "timeout": 2.0}
    if fake is not None:
        values["base_url"] = fake.base_url
    return AnthropicConfig(**{**values, **overrides})


@asynccontextmanager
async def started(fake: FakeAnthropic | None = None, **overrides: Any) -> AsyncIterator[AnthropicSkill]:
    """A started skill (its client open), stopped on exit."""
    skill = AnthropicSkill(config(fake, **overrides), AGENT)
    await skill.start()
    try:
        yield skill
    finally:
        await skill.stop()


def messages(text: str = "hello there") -> list[Message]:
    """A system prompt and one user message."""
    return [Message(role="system", content="Be brief."), Message(role="user", content=text)]


def call_and_ctx(text: str = "hello there", *, stream: bool = False, model: str = "anthropic/claude-x",
                 msgs: list[Message] | None = None, **kw: Any) -> tuple[RequestContext, LLMCall]:
    """A request context and the LLM call of its first round."""
    msgs = msgs if msgs is not None else messages(text)
    ctx = RequestContext(AGENT, msgs, stream=stream)
    return ctx, LLMCall(model=model, messages=msgs, stream=stream, **kw)


async def collect(stream: Any) -> list[ChatCompletionChunk]:
    """Every chunk of a stream."""
    return [chunk async for chunk in stream]


def assemble(chunks: list[ChatCompletionChunk]) -> dict[str, Any]:
    """What a client makes of a chunk stream: text, tool calls by index (arguments parsed),
    the finish reason and the last usage."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = usage = None
    for chunk in chunks:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            for part in choice.delta.tool_calls or ():
                slot = calls.setdefault(part.index, {"id": None, "name": "", "arguments": ""})
                if part.id:
                    assert slot["id"] is None, "a tool call's id arrived twice"
                    slot["id"] = part.id
                if part.function is not None:
                    slot["name"] += part.function.name or ""
                    slot["arguments"] += part.function.arguments or ""
            finish = choice.finish_reason or finish
    return {
        "text": "".join(text),
        "tool_calls": [(c["id"], c["name"], json.loads(c["arguments"])) for _, c in sorted(calls.items())],
        "indexes": sorted(calls),
        "finish_reason": finish,
        "usage": usage,
    }


def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name
    """
    return f"Sunny in {city}"

"""Shared helpers of the openai plugin tests: a skill wired to a FakeOpenAI, and a runner
for async test bodies (the tests do not depend on pytest-asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from robutler_kernel.testing import FakeOpenAI, StandaloneKernel
from robutler_plugin_openai import OpenAIConfig, OpenAISkill
from robutler_specs import AgentSpec, LLMCall, Message, RequestContext

T = TypeVar("T")
AGENT = AgentSpec(name="t", model="openai/gpt-x")


def run(coro: Awaitable[T]) -> T:
    """Run one async test body on a fresh event loop."""
    async def main() -> T:
        return await coro
    return asyncio.run(main())


#: The chat transport the tests run on; ``conftest.py`` runs every test on each.
TRANSPORT = {"name": "sdk"}


def config(fake: FakeOpenAI | None = None, **overrides: Any) -> OpenAIConfig:
    """A config pointing at ``fake``, with a short timeout."""
    values: dict[str, Any] = {"api_key": "test-key", "timeout": 2.0,
                              "transport": TRANSPORT["name"]}
    if fake is not None:
        values["base_url"] = fake.base_url
    return OpenAIConfig(**{**values, **overrides})


#: The kernel the skills of these tests are attached to (its ``state`` lists live skills).
KERNEL = StandaloneKernel()


@asynccontextmanager
async def started(fake: FakeOpenAI | None = None, **overrides: Any) -> AsyncIterator[OpenAISkill]:
    """A started skill (its client open), stopped on exit."""
    skill = OpenAISkill(config(fake, **overrides), AGENT)
    skill.kernel = KERNEL
    await skill.start()
    try:
        yield skill
    finally:
        await skill.stop()


def messages(text: str = "hello there") -> list[Message]:
    """A system prompt and one user message."""
    return [Message(role="system", content="Be brief."), Message(role="user", content=text)]


def call_and_ctx(text: str = "hello there", *, stream: bool = False, model: str = "openai/gpt-x",
                 **kw: Any) -> tuple[RequestContext, LLMCall]:
    """A request context and the LLM call of its first round."""
    msgs = messages(text)
    ctx = RequestContext(AGENT, msgs, stream=stream)
    return ctx, LLMCall(model=model, messages=msgs, stream=stream, **kw)


async def collect(stream: Any) -> list[Any]:
    """Every chunk of a stream."""
    return [chunk async for chunk in stream]



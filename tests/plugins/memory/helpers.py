"""Shared pieces of the memory plugin's tests: kernels, test skills, a chat helper."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx

import robutler_plugin_memory as memory
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import HookRecorder, make_kernel
from robutler_specs import Identity, Message, RequestContext, Skill, handoff, hookimpl, tool

#: The Redis of the tests (and of the plugin's default): $REDIS_URL, else the local one.
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
#: A port nothing listens on (the discard port), for "Redis is down".
CLOSED_REDIS_URL = "redis://127.0.0.1:9/0"


def unique_prefix() -> str:
    """A key prefix no other test run uses."""
    return f"robutler-test:stm:{uuid.uuid4().hex}:"


class HeaderAuth(Skill):
    """Test auth: ``X-Test-User: alice`` authenticates the caller as ``alice``."""

    name = "stm_test_auth"
    priority = 5

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        user = ctx.headers.get("x-test-user")
        if user:
            ctx.identity = Identity(user_id=user, source="test")


class Tools(Skill):
    """Tools the scripted model can call: ``call lookup order=A1``."""

    name = "stm_test_tools"

    @tool
    def lookup(self, order: str) -> str:
        """Look up an order.

        Args:
            order: the order id
        """
        return f"order {order} shipped"

    @tool
    def explode(self) -> str:
        """Always fails."""
        raise RuntimeError("boom")

    @handoff(name="escalate", description="Hand the conversation to a human")
    def escalate(self, reason: str) -> str:
        """Escalate.

        Args:
            reason: why
        """
        return f"A human will follow up: {reason}"


def agent(memory_config: dict[str, Any] | None = None, *, model: str = "scripted/echo",
          scripts: dict[str, Any] | None = None, instructions: str = "You are a test agent.",
          **extra: Any) -> dict[str, Any]:
    """An agent config with short-term memory, test auth and test tools."""
    skills: dict[str, Any] = {
        "short_term_memory": memory_config,
        "stm_test_auth": None,
        "stm_test_tools": None,
    }
    if scripts:
        skills["scripted"] = {"scripts": scripts}
    return {"model": model, "instructions": instructions, "skills": skills, **extra}


def kernel(agents: dict[str, Any] | None = None, recorder: HookRecorder | None = None, **agent_kw: Any) -> Any:
    """A kernel with the memory, scripted and test plugins (no discovery)."""
    return make_kernel(
        agents or {"bot": agent(**agent_kw)},
        plugins=[scripted, memory, HeaderAuth, Tools],
        recorder=recorder,
    )


def memory_skill(k: Any, name: str = "bot") -> memory.ShortTermMemory:
    """The agent's ShortTermMemory instance."""
    return next(s for s in k.agent(name).skills if isinstance(s, memory.ShortTermMemory))


async def chat(client: httpx.AsyncClient, text: str | None = None, *, agent_name: str = "bot",
               conversation: str | None = None, user: str | None = None, as_user: str | None = None,
               messages: list[dict[str, Any]] | None = None, **body: Any) -> httpx.Response:
    """POST one chat completion; ``conversation`` sets X-Conversation-Id, ``user`` the
    request's ``user`` field, ``as_user`` the test auth header."""
    headers = {}
    if conversation is not None:
        headers["X-Conversation-Id"] = conversation
    if as_user is not None:
        headers["X-Test-User"] = as_user
    payload: dict[str, Any] = {"messages": messages or [{"role": "user", "content": text}], **body}
    if user is not None:
        payload["user"] = user
    return await client.post(f"/{agent_name}/chat/completions", json=payload, headers=headers)


def answer(response: httpx.Response) -> str:
    """The assistant's text of a 200 response."""
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def seen_by_model(recorder: HookRecorder, index: int = -1) -> list[tuple[str, str]]:
    """(role, text) of the messages of one recorded LLM call (system prompt excluded)."""
    call = recorder.of("before_llm_call")[index].kwargs["call"]
    return [(m.role, m.text()) for m in call.messages if m.role != "system"]


def roles(messages: list[Message]) -> list[str]:
    """The roles of ``messages``, in order."""
    return [m.role for m in messages]

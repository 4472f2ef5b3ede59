"""Helpers of the long-term memory tests: a kernel with the skill, a chat call, a prompt spy."""

from __future__ import annotations

from typing import Any

import robutler_plugin_longterm as longterm
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import make_kernel
from robutler_specs import Identity, LLMCall, RequestContext, Skill, hookimpl


class PromptSpy(Skill):
    """Records the system prompt of every LLM call (what the model is told)."""

    name = "prompt_spy"
    priority = 99
    seen: list[str] = []

    @hookimpl
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        system = call.messages[0].text() if call.messages and call.messages[0].role == "system" else ""
        type(self).seen.append(system)


class FixedIdentity(Skill):
    """Stands in for an auth skill: the caller is whoever the ``x-test-identity`` header says."""

    name = "fixed_identity"
    priority = 5

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        user = ctx.headers.get("x-test-identity")
        if user:
            ctx.identity = Identity(user_id=user, source="test")


def memory_kernel(agents: dict[str, dict[str, Any]], *, spy: bool = False, identity: bool = False) -> Any:
    """A kernel whose agents run on ``scripted/echo`` with ``long_term_memory`` configured
    as given (``{agent: skill config}``)."""
    skills_extra: dict[str, Any] = {}
    plugins: list[Any] = [scripted, longterm]
    if spy:
        PromptSpy.seen = []
        plugins.append(PromptSpy)
        skills_extra["prompt_spy"] = None
    if identity:
        plugins.append(FixedIdentity)
        skills_extra["fixed_identity"] = None
    return make_kernel(
        {
            name: {
                "model": "scripted/echo",
                "instructions": "You are a test agent.",
                "skills": {"long_term_memory": config, **skills_extra},
            }
            for name, config in agents.items()
        },
        plugins=plugins,
    )


async def chat(
    client: Any, agent: str, text: str, *, user: str | None = None, headers: dict[str, str] | None = None,
    status: int = 200,
) -> str:
    """Send one user message; the assistant's text (or the error message for a non-200)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    if user is not None:
        body["user"] = user
    response = await client.post(f"/{agent}/chat/completions", json=body, headers=headers or {})
    assert response.status_code == status, response.text
    data = response.json()
    if status != 200:
        return str(data["error"]["message"])
    return str(data["choices"][0]["message"]["content"])

"""Helpers of the vector memory tests: a kernel with the skill, a chat call, a prompt spy."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import robutler_plugin_scripted as scripted
import robutler_plugin_vector as vector
from robutler_kernel.testing import make_kernel
from robutler_specs import LLMCall, RequestContext, Skill, hookimpl


class VectorPromptSpy(Skill):
    """Records the system prompt of every LLM call (what the model is told)."""

    name = "vector_prompt_spy"
    priority = 99
    seen: list[str] = []

    @hookimpl
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        system = call.messages[0].text() if call.messages and call.messages[0].role == "system" else ""
        type(self).seen.append(system)


def vector_kernel(agents: dict[str, dict[str, Any]], *, spy: bool = False, plugins: Sequence[Any] = ()) -> Any:
    """A kernel whose agents run on ``scripted/echo`` with ``vector_memory`` configured as
    given (``{agent: skill config}``)."""
    extra: dict[str, Any] = {}
    all_plugins: list[Any] = [scripted, vector, *plugins]
    if spy:
        VectorPromptSpy.seen = []
        all_plugins.append(VectorPromptSpy)
        extra["vector_prompt_spy"] = None
    return make_kernel(
        {
            name: {
                "model": "scripted/echo",
                "instructions": "You are a test agent.",
                "skills": {"vector_memory": config, **extra},
            }
            for name, config in agents.items()
        },
        plugins=all_plugins,
    )


async def chat(client: Any, agent: str, text: str, *, user: str | None = None, status: int = 200) -> str:
    """Send one user message; the assistant's text (or the error message for a non-200)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    if user is not None:
        body["user"] = user
    response = await client.post(f"/{agent}/chat/completions", json=body)
    assert response.status_code == status, response.text
    data = response.json()
    if status != 200:
        return str(data["error"]["message"])
    return str(data["choices"][0]["message"]["content"])


def tool_json(answer: str, tool: str) -> Any:
    """The JSON a tool returned, from the scripted model's "Tool <name> returned: ..." line."""
    prefix = f"Tool {tool} returned: "
    assert answer.startswith(prefix), answer
    return json.loads(answer[len(prefix):])


async def store(client: Any, agent: str, user: str, text: str, metadata: dict[str, Any] | None = None) -> str:
    """Store a document through the tool; its id."""
    command = f"call store_document {json.dumps({'text': text, **({'metadata': metadata} if metadata else {})})}"
    return str(tool_json(await chat(client, agent, command, user=user), "store_document")["id"])


async def search(client: Any, agent: str, user: str, query: str, top_k: int = 5) -> list[dict[str, Any]]:
    """Search through the tool; the results."""
    command = f"call search_memory {json.dumps({'query': query, 'top_k': top_k})}"
    return list(tool_json(await chat(client, agent, command, user=user), "search_memory")["results"])

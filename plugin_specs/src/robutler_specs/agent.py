"""The description of an agent, as configured (YAML) or resolved dynamically."""

from __future__ import annotations

from typing import Any

import msgspec


class AgentSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One agent: instructions, a model and skills.

    :ivar name: the agent's name; its URL path (``/{name}/chat/completions``).
    :ivar description: one line shown in listings and to other agents.
    :ivar instructions: the system prompt.
    :ivar model: ``"<provider>/<model>"``, or a list tried in order (fallback).
    :ivar skills: skill name to that skill's config (``None`` means defaults).
    :ivar tools: ``"module:function"`` references to plain-Python tools.
    :ivar max_tool_rounds: how many rounds of internal tool calls one request may run.
    :ivar tool_timeout: seconds one tool call may take before it fails.
    :ivar allowed_models: models a request's ``model`` field may switch to.
    :ivar intents: what the agent can do, for discovery.
    :ivar owner: the user id of the agent's owner (``owner`` scope).
    :ivar metadata: free-form data shown in agent info.
    """

    name: str = ""
    description: str = ""
    instructions: str = ""
    model: str | list[str] = "scripted/echo"
    skills: dict[str, dict[str, Any] | None] = {}
    tools: list[str] = []
    max_tool_rounds: int = 10
    tool_timeout: float = 30.0
    allowed_models: list[str] = []
    intents: list[str] = []
    owner: str | None = None
    metadata: dict[str, Any] = {}

    @property
    def models(self) -> list[str]:
        """``model`` as a list (the first is the primary)."""
        return [self.model] if isinstance(self.model, str) else list(self.model)


__all__ = ["AgentSpec"]

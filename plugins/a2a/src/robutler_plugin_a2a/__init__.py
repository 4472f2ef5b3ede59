"""Robutler plugin ``a2a``: agents as A2A (Agent2Agent protocol) servers.

An agent that lists the ``a2a`` skill publishes an agent card at
``/{agent}/.well-known/agent-card.json`` and answers A2A JSON-RPC at ``/{agent}/a2a``
(``message/send``, ``message/stream``, ``tasks/get``; protocol 1.0 and 0.3), through the
agent's request lifecycle: its auth skill authenticates, its payments skill charges, its
limits apply. Built on the official ``a2a-sdk``. Documentation: ``docs/plugins/a2a.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from robutler_specs import HttpRoute, KernelAPI, Skill, hookimpl

from .card import agent_config, build_card
from .config import A2AConfig, A2ASettings, CardSkill
from .handler import AgentRequestHandler
from .server import routes

#: ``robutler-kernel check`` validates ``plugins: {a2a: {...}}`` into it.
PluginSettings = A2ASettings

__all__ = [
    "A2AConfig",
    "A2ASettings",
    "A2ASkill",
    "AgentRequestHandler",
    "CardSkill",
    "PluginSettings",
    "agent_config",
    "build_card",
]


class A2ASkill(Skill):
    """Serves the agent over A2A: listing it in an agent's skills is what turns it on."""

    name = "a2a"
    Config = A2AConfig
    description = "The agent as an A2A server: an agent card, message/send and message/stream with tasks"

    def describe(self) -> dict[str, Any] | None:
        """Where the card and the endpoint are, for ``GET /{agent}``."""
        return {
            "card": f"/{self.agent.name}/.well-known/agent-card.json",
            "endpoint": f"/{self.agent.name}/a2a",
        }


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    """The ``a2a`` skill."""
    return [A2ASkill]


@hookimpl
def robutler_routes(kernel: KernelAPI) -> Sequence[HttpRoute]:
    """The agent cards and the JSON-RPC endpoint."""
    return routes(kernel)

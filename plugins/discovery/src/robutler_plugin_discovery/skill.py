"""The ``discovery`` skill: the ``discover_agents`` tool (and, on a registry, the door
registrations go through)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from robutler_specs import RequestContext, Skill, tool

from .config import DiscoveryConfig
from .runtime import runtime_of


class DiscoverySkill(Skill):
    """Finds other agents: on this server, on peer servers and in a registry.

    See ``docs/plugins/discovery.md``.
    """

    name = "discovery"
    description = "Finds agents by what they can do: this server, peer servers, a registry"
    Config = DiscoveryConfig

    def __init__(self, config: DiscoveryConfig, agent: Any) -> None:
        super().__init__(config, agent)
        self.config: DiscoveryConfig = config

    @tool
    async def discover_agents(self, query: str, ctx: RequestContext, top_k: int = 5) -> dict[str, Any]:
        """Find agents that can help with a task: searches this server, peer servers and the
        agent registry. Returns each agent's name, URL, description and intents.

        Args:
            query: what the agent should be able to do, e.g. "weather forecasts"
            top_k: how many agents at most
        """
        c = self.config
        top_k = max(1, min(top_k, c.max_top_k))
        return await runtime_of(self.kernel).discover(
            query, top_k, local=c.local, peers=c.peers, registry=c.registry, exclude=self.agent.name
        )

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """The registry's ``SELECT 1``, when this kernel is a registry."""
        registry = self.kernel.state.get("discovery")
        registry = getattr(registry, "registry", None)
        return {registry.name: registry.check} if registry is not None else {}

"""Agent discovery for Robutler: search agents by intents, peers, a registry.

- ``GET /agents?search=&top_k=`` ranks this kernel's agents (and, on a registry, the
  registered ones) by BM25, or by embeddings when a ``robutler_embed`` plugin answers.
- The ``discovery`` skill gives the model ``discover_agents``: this kernel, peer kernels,
  the registry.
- ``plugins.discovery.registry`` makes the kernel a registry; ``plugins.discovery.announce``
  publishes this kernel's agents to one and renews them.

Documentation: ``docs/plugins/discovery.md``.
"""

from __future__ import annotations

from robutler_specs import HttpRoute, KernelAPI, hookimpl

from .config import AnnounceConfig, DiscoveryConfig, DiscoverySettings, RegistryConfig
from .entries import AgentEntry
from .registry import Registration, Registry
from .routes import make_routes
from .runtime import STATE_KEY, Discovery, parse_settings
from .skill import DiscoverySkill

__all__ = [
    "AgentEntry",
    "AnnounceConfig",
    "Discovery",
    "DiscoveryConfig",
    "DiscoverySettings",
    "DiscoverySkill",
    "PluginSettings",
    "Registration",
    "Registry",
    "RegistryConfig",
]

#: The ``plugins.discovery`` section: ``robutler-kernel check`` validates it into this Struct.
PluginSettings = DiscoverySettings


@hookimpl
def robutler_skills() -> list[type[DiscoverySkill]]:
    """The discovery skill."""
    return [DiscoverySkill]


@hookimpl
def robutler_routes(kernel: KernelAPI) -> list[HttpRoute]:
    """``GET /agents`` (replacing the kernel's simple search) and the registry's routes."""
    return make_routes(kernel)


@hookimpl
async def robutler_startup(kernel: KernelAPI) -> None:
    """Read ``plugins.discovery``, open the session and registry, start announcing."""
    runtime = Discovery(kernel, parse_settings(kernel.plugin_settings("discovery")))
    kernel.state[STATE_KEY] = runtime
    try:
        await runtime.start()
    except BaseException:
        kernel.state.pop(STATE_KEY, None)
        await runtime.stop()
        raise


@hookimpl
async def robutler_shutdown(kernel: KernelAPI) -> None:
    """Stop announcing (removing the registrations), close the registry and session."""
    runtime = kernel.state.pop(STATE_KEY, None)
    if isinstance(runtime, Discovery):
        await runtime.stop()

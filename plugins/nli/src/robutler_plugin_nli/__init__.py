"""Robutler plugin ``nli``: agents calling agents.

The ``nli`` skill gives the model ``ask_agent(agent, message)`` and other skills
:meth:`NLISkill.ask`; it also makes the kernel's remote handoffs
(``handoffs: ["https://host/agent"]``). A local agent runs in-process; a remote one is
called over HTTP (one aiohttp session per kernel) with the request's budget as
``X-Authorized-Amount``, the chain of agents as ``X-Robutler-Chain`` and a peer's own
credentials, after the SSRF guard checked its URL. Documentation: ``docs/plugins/nli.md``.
"""

from __future__ import annotations

from robutler_specs import KernelAPI, Skill, hookimpl

from .caller import AgentReply, Caller, Destination
from .client import close_session
from .config import NLIConfig, PeerConfig
from .guard import HostPolicy, Refused
from .skill import NLISkill

__all__ = [
    "AgentReply",
    "Caller",
    "Destination",
    "HostPolicy",
    "NLIConfig",
    "NLISkill",
    "PeerConfig",
    "Refused",
]


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    """The ``nli`` skill."""
    return [NLISkill]


@hookimpl
async def robutler_shutdown(kernel: KernelAPI) -> None:
    """Close the kernel's HTTP session (opened on the first remote call)."""
    await close_session(kernel)

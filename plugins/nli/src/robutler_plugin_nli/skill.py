"""The ``nli`` skill: the ``ask_agent`` tool, ``ask`` for other skills, and the kernel's
remote handoffs (``agent_complete`` / ``agent_stream``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from robutler_specs import (
    AgentCall,
    AgentSpec,
    ChatCompletion,
    ChatCompletionChunk,
    RequestContext,
    RequestError,
    Skill,
    ToolError,
    hookimpl,
    prompt,
    tool,
)

from .caller import AgentReply, Caller
from .config import NLIConfig


class NLISkill(Skill):
    """Agents calling agents: local ones in-process, remote ones over HTTP."""

    name = "nli"
    Config = NLIConfig
    calls_agents = True
    description = "Ask other agents (local, peers, URLs) with budgets passed on; remote handoffs"

    def __init__(self, config: NLIConfig, agent: AgentSpec) -> None:
        super().__init__(config, agent)
        self.config: NLIConfig = config
        self._caller: Caller | None = None

    @property
    def caller(self) -> Caller:
        """The :class:`Caller` of this agent's settings."""
        if self._caller is None:
            self._caller = Caller(self.kernel, self.config)
        return self._caller

    def describe(self) -> dict[str, Any] | None:
        """The peers this agent may ask, for ``GET /{agent}``."""
        if not self.config.peers:
            return None
        return {"peers": sorted(self.config.peers)}

    @prompt(priority=60)
    def peers_prompt(self) -> str | None:
        """Tell the model which peers it may ask by name."""
        if not self.config.peers:
            return None
        lines = [f"- {name}" + (f": {p.description}" if p.description else "") for name, p in self.config.peers.items()]
        return "Other agents you can ask with the ask_agent tool:\n" + "\n".join(lines)

    # -- for the model, and for skills ----------------------------------------------------

    @tool
    async def ask_agent(self, agent: str, message: str, ctx: RequestContext) -> str:
        """Ask another agent a question and get its answer. Cost and budget are handled for you.

        Args:
            agent: the agent: a name (an agent of this server, or a known peer) or its URL (https://host/agent;
                a2a+https://host/agent for an A2A agent)
            message: what to ask it, complete in itself (it does not see this conversation)
        """
        try:
            reply = await self.caller.ask(ctx, agent, message)
        except RequestError as exc:
            raise ToolError(exc.message) from None
        return reply.text or f"({reply.agent} answered with no text)"

    async def ask(self, ctx: RequestContext, agent: str, message: str) -> AgentReply:
        """Ask ``agent`` (a local name, a peer's name, a URL) for ``ctx``'s request; its cost
        is added to the request's usage. See :meth:`Caller.ask`.

        :raises RequestError: refused, over budget, unknown, or the agent failed.
        """
        return await self.caller.ask(ctx, agent, message)

    async def ask_stream(self, ctx: RequestContext, agent: str, message: str) -> AsyncIterator[ChatCompletionChunk]:
        """As :meth:`ask`, streamed (see :meth:`Caller.ask_stream`)."""
        return await self.caller.ask_stream(ctx, agent, message)

    # -- the kernel's remote handoffs -------------------------------------------------------

    @hookimpl
    async def agent_complete(self, ctx: RequestContext, call: AgentCall) -> ChatCompletion:
        """Call the remote agent of a handoff (the kernel records its usage and cost)."""
        return await self.caller.complete(call, ctx.forward_headers)

    @hookimpl
    async def agent_stream(self, ctx: RequestContext, call: AgentCall) -> AsyncIterator[ChatCompletionChunk]:
        """Stream the remote agent of a handoff (the kernel records its usage and cost)."""
        return await self.caller.stream(call, ctx.forward_headers)


__all__ = ["NLISkill"]

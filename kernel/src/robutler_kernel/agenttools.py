"""An agent's tools offered through another door (the MCP plugin's server): listed for a
caller with the agent's scopes, and run as the agent's own tool loop runs them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from robutler_specs import NotFound, RequestContext, ToolInvocation, ToolResult, ToolSpec

from .toolrunner import run_tool

if TYPE_CHECKING:
    from .agent import Agent
    from .kernel import Kernel


def _agent(kernel: Kernel, ctx: RequestContext) -> Agent:
    agent = kernel.agent(ctx.agent.name)
    if agent is None:
        raise NotFound(f"no agent named {ctx.agent.name!r} on this server", code="agent_not_found")
    return agent


def agent_tools(kernel: Kernel, ctx: RequestContext) -> Mapping[str, ToolSpec]:
    """The tools of ``ctx``'s agent its caller may use (handoffs left out: they pass a
    conversation on, and a door without one has none to pass)."""
    agent = _agent(kernel, ctx)
    return {
        name: tool
        for name, tool in agent.permitted_tools(ctx).items()
        if not tool.is_handoff and name not in agent.handoffs
    }


async def call_tool(kernel: Kernel, ctx: RequestContext, name: str, arguments: str) -> ToolResult:
    """Run tool ``name`` of ``ctx``'s agent through its hooks (see ``KernelAPI.call_tool``)."""
    agent = _agent(kernel, ctx)
    inv = ToolInvocation(
        id=f"call_{uuid.uuid4().hex}", name=name, arguments=arguments, tool=agent_tools(kernel, ctx).get(name)
    )
    return await run_tool(agent.hooks, ctx, inv, agent.spec.tool_timeout)


__all__ = ["agent_tools", "call_tool"]

"""Robutler plugin ``mcp``: the Model Context Protocol, both ways.

* The ``mcp`` skill gives an agent the tools of MCP servers (:mod:`.skill`, :mod:`.client`).
* ``/{agent}/mcp`` serves an agent as an MCP server when its ``mcp`` skill says
  ``serve: true`` (:mod:`.server`).
* ``robutler-kernel mcp-stdio AGENT`` bridges a stdio-only MCP client (Claude Desktop) to
  that endpoint (:mod:`.bridge`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from robutler_specs import HttpRoute, KernelAPI, Skill, hookimpl

from .config import McpConfig, PluginSettings, ServerConfig
from .server import AgentMcpServer
from .skill import McpSkill


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    return [McpSkill]


@hookimpl
def robutler_routes(kernel: KernelAPI) -> Sequence[HttpRoute]:
    door = AgentMcpServer(kernel)
    # A route with {agent} is called as handler(request, ctx); HttpRoute types the other kind.
    handler: Any = door.handle
    return [HttpRoute("/{agent}/mcp", handler, methods=("POST", "GET", "DELETE"), plugin="mcp")]


@hookimpl
def robutler_commands() -> Mapping[str, Callable[[list[str], Mapping[str, Any]], int]]:
    from .bridge import mcp_stdio

    return {"mcp-stdio": mcp_stdio}


__all__ = ["AgentMcpServer", "McpConfig", "McpSkill", "PluginSettings", "ServerConfig"]

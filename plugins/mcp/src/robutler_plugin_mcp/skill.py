"""The ``mcp`` skill: MCP servers' tools as the agent's tools.

Sessions are opened in :meth:`McpSkill.start` (once per agent and server, concurrently; a
server that fails to start is logged and tried again on use) and closed in
:meth:`McpSkill.stop`. Each request gets the tools of the last listing through
``on_connection`` (``ctx.add_tool`` of ready-made specs: a dict insertion per tool), so
the agent's tool loop, scopes, ``before_toolcall`` / ``after_toolcall`` and payments treat
them like any other tool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp import MCPError
from mcp_types import REQUEST_TIMEOUT

from robutler_specs import RequestContext, Skill, ToolError, ToolSpec, hookimpl

from .client import Connection, ServerDown
from .config import McpConfig
from .results import render
from .tools import build_specs

log = logging.getLogger("robutler.mcp")


class McpSkill(Skill):
    """Tools from MCP servers; and, with ``serve: true``, the agent as an MCP server."""

    name = "mcp"
    Config = McpConfig
    description = "MCP: tools from MCP servers (stdio or HTTP); the agent as an MCP server at /{agent}/mcp"

    def __init__(self, config: McpConfig, agent: Any) -> None:
        super().__init__(config, agent)
        self.connections: dict[str, Connection] = {
            name: Connection(name, server, agent.name, self._rebuild) for name, server in config.servers.items()
        }
        self.specs: dict[str, ToolSpec] = {}

    def _rebuild(self) -> None:
        specs: dict[str, ToolSpec] = {}
        for name, conn in self.connections.items():
            specs.update(build_specs(name, conn.config, conn.tools, self._call))
        self.specs = specs

    async def start(self) -> None:
        """Start (or reach) every server and list its tools, concurrently."""
        if not self.connections:
            return

        async def first(conn: Connection) -> None:
            try:
                await conn.connect()
            except ServerDown as exc:
                log.warning("agent %r: %s", self.agent.name, exc)

        await asyncio.gather(*(first(c) for c in self.connections.values()))

    async def stop(self) -> None:
        """Close every session (stdio servers are stopped)."""
        await asyncio.gather(*(c.close() for c in self.connections.values()), return_exceptions=True)

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        if not self.connections:
            return
        now = time.monotonic()
        for conn in self.connections.values():
            if conn.stale(now):
                conn.refresh()  # in the background: this request uses the last listing
        for spec in self.specs.values():
            ctx.add_tool(spec)

    async def _call(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        conn = self.connections[server]
        try:
            result = await conn.call(tool, arguments)
        except ServerDown as exc:
            raise ToolError(f"{exc}; the server is started again on the next call") from None
        except MCPError as exc:  # an MCP error answer (unknown tool, bad params), or no answer
            if exc.code == REQUEST_TIMEOUT:
                raise ToolError(
                    f"MCP tool {tool!r} of server {server!r} did not answer within "
                    f"{conn.config.timeout:g} s (its timeout); the call was cancelled"
                ) from None
            raise ToolError(f"MCP server {server!r} refused the call to {tool!r}: {exc.error.message}") from None
        text = render(result)
        if result.is_error:
            raise ToolError(f"MCP tool {tool!r} of server {server!r} failed: {text}")
        return text

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """One check per server: it answers a ping (a stopped stdio server says so)."""
        return {f"mcp:{self.agent.name}:{name}": conn.ping for name, conn in self.connections.items()}

    def describe(self) -> dict[str, Any] | None:
        """The servers, whether each is up, and the tools they give the agent."""
        if not self.connections and not self.config.serve:
            return None
        servers = {
            name: {
                "transport": conn.config.transport,
                "up": conn.session is not None,
                "error": conn.error,
                "tools": sorted(n for n, s in self.specs.items() if getattr(s, "server", None) == name),
            }
            for name, conn in self.connections.items()
        }
        return {"servers": servers, "serves_mcp": self.config.serve}


__all__ = ["McpSkill"]

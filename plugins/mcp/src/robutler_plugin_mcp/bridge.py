"""``robutler-kernel mcp-stdio AGENT``: an MCP server on stdio that is an agent of a running
Robutler server, for clients that only start local commands (Claude Desktop's config file).

It relays each JSON-RPC message between stdin/stdout and the agent's ``/{agent}/mcp``
endpoint, so every request still goes through the agent's lifecycle on the server (its
auth, payments, limits). Both ends are the SDK's own transports.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared._httpx_utils import create_mcp_http_client


async def _relay(source: Any, sink: Any, label: str) -> None:
    async with sink:
        async for item in source:
            if isinstance(item, Exception):
                print(f"mcp-stdio: {label}: {item}", file=sys.stderr)
                continue
            await sink.send(item)


async def bridge(url: str, headers: dict[str, str]) -> None:
    """Relay stdin/stdout to the streamable-HTTP endpoint ``url`` until stdin closes."""
    async with (
        stdio_server() as (stdin, stdout),
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (remote_in, remote_out),
        anyio.create_task_group() as group,
    ):
        group.start_soon(_relay, remote_in, stdout, "from the server")
        await _relay(stdin, remote_out, "from the client")
        group.cancel_scope.cancel()


def mcp_stdio(args: list[str], settings: Mapping[str, Any]) -> int:
    """Serve an agent of a running server as an MCP server on stdio (for Claude Desktop)."""
    parser = argparse.ArgumentParser(prog="robutler-kernel mcp-stdio", description=mcp_stdio.__doc__)
    parser.add_argument("agent", help="the agent to serve (its mcp skill must say serve: true)")
    parser.add_argument(
        "--url",
        default=os.environ.get("ROBUTLER_URL") or settings.get("url") or "http://127.0.0.1:8000",
        help="the Robutler server (default: $ROBUTLER_URL, plugins.mcp.url, or http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("ROBUTLER_API_KEY"), help="sent as a Bearer token (default: $ROBUTLER_API_KEY)"
    )
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="another header to send")
    ns = parser.parse_args(args)
    base = str(ns.url).rstrip("/")
    if not base.startswith(("http://", "https://")):
        print(f"error: --url must start with http:// or https://, not {base!r}", file=sys.stderr)
        return 1
    headers: dict[str, str] = {}
    if ns.api_key:
        headers["Authorization"] = f"Bearer {ns.api_key}"
    for header in ns.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            print(f"error: --header must be NAME:VALUE, not {header!r}", file=sys.stderr)
            return 1
        headers[name.strip()] = value.strip()
    try:
        anyio.run(bridge, f"{base}/{ns.agent}/mcp", headers)
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        while isinstance(exc, ExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        print(f"error: mcp-stdio for {base}/{ns.agent}/mcp: {exc}", file=sys.stderr)
        return 1
    return 0


__all__ = ["bridge", "mcp_stdio"]

"""The MCP server of ``python -m bench mcp``: one tool that does nothing, written with the
SDK's ``MCPServer``; ``python -m bench.mcp_toolserver stdio`` or ``... http PORT``."""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench")


@server.tool()
async def noop() -> str:
    """Does nothing."""
    return "done"


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        import uvicorn

        app = server.streamable_http_app(json_response=True, stateless_http=True)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")

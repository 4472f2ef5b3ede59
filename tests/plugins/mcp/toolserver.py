"""An MCP server written with the SDK's ``MCPServer`` (``FastMCP`` before mcp 2), for the
tests and the benchmark: ``python toolserver.py stdio`` or ``python toolserver.py http PORT``.

Its tools cover what a client must map: text, an image, structured content, an error, a
hang, an exit in the middle of a call, and garbage on stdout.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent

server = MCPServer("toolserver")

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 100).decode()


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Echo the text."""
    return text


@server.tool()
def picture() -> CallToolResult:
    """A caption and an image."""
    return CallToolResult(
        content=[TextContent(text="a square"), ImageContent(data=PNG, mime_type="image/png")]
    )


@server.tool()
def weather(city: str) -> dict[str, object]:
    """Structured weather."""
    return {"city": city, "degrees": 21}


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ValueError("the disk is on fire")


@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.sleep(3600)
    return "never"


@server.tool()
def die() -> str:
    """Exits the process in the middle of the call."""
    os._exit(3)


@server.tool()
def garbage() -> str:
    """Writes something that is not JSON-RPC where the answer should be (stdio)."""
    os.write(int(os.environ.get("TOOLSERVER_STDOUT_FD", "1")), b"this is not json\n")
    os._exit(0) if os.environ.get("TOOLSERVER_GARBAGE_EXIT") else None
    return "after the garbage"


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds a tool named `extra` and tells the client the list changed."""

    def extra() -> str:
        """A tool added while serving."""
        return "extra here"

    server.add_tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"


def http_app() -> object:
    """The streamable-HTTP app, answering garbage to a call of the `garbage` tool."""
    app = server.streamable_http_app(json_response=True)

    async def wrapped(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)  # type: ignore[operator]
        body = b""
        more = True
        while more:
            message = await receive()  # type: ignore[operator]
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if b'"tools/call"' in body and b'"garbage"' in body:
            await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b"this is not json"})  # type: ignore[operator]
            return None
        sent = False

        async def replay() -> dict:  # type: ignore[type-arg]
            nonlocal sent
            if sent:
                return await receive()  # type: ignore[operator,no-any-return]
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await app(scope, replay, send)  # type: ignore[operator]

    return wrapped


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        # The SDK points fd 1 at stderr while serving; keep the real stdout for `garbage`.
        os.environ["TOOLSERVER_STDOUT_FD"] = str(os.dup(1))
        server.run("stdio")
    else:
        import uvicorn

        uvicorn.run(http_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")

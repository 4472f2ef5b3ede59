"""Each agent as an MCP server: ``/{agent}/mcp``, streamable HTTP, off unless the agent's
``mcp`` skill says ``serve: true``.

The route is a plugin route with ``{agent}`` in its path, so every MCP request goes through
the agent's one lifecycle (``on_connection`` first: the auth skill identifies the caller;
the body limit, ``request_timeout``, ``finalize_connection``, metrics) and the handler gets
the request's context. Inside, the SDK's low-level ``Server`` answers through its
streamable-HTTP session manager in *stateless* mode with JSON answers: each POST carries one
JSON-RPC message and gets its answer in the response body, so any replica can serve any
request (no session to keep; a ``GET`` stream for server-sent messages is a 405, which
clients accept). The manager runs inside the request's task, so the deadline and a client
that leaves cancel the tool call too.

Tools offered: the agent's tools the caller may use (``KernelAPI.agent_tools``: scopes
checked against the identity the auth skill set; handoffs left out), run through
``KernelAPI.call_tool`` (``before_toolcall``, ``after_toolcall``, pricing, the agent's
``tool_timeout``), and one tool (``ask``) that runs the agent's conversation on a message
(``KernelAPI.complete_agent`` with this request as parent: same caller, same budget).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import MutableMapping
from typing import Any

import anyio
import mcp_types as types
import msgspec
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from robutler_specs import HttpRequest, HttpResponse, KernelAPI, Message, NotFound, RequestContext, ToolSpec

from .config import McpConfig

#: The request an MCP handler works for (set by the route, read by the SDK's handlers,
#: which run in tasks started from the route's own task).
CURRENT: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("robutler_mcp_request")

ASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string", "description": "what to ask or tell the agent"}},
    "required": ["message"],
    "additionalProperties": False,
}


def settings_of(ctx: RequestContext) -> McpConfig | None:
    """The agent's ``mcp`` skill config, or ``None`` when it has none."""
    skills = ctx.agent.skills
    if "mcp" not in skills:
        return None
    return msgspec.convert(skills["mcp"] or {}, McpConfig)


class AgentMcpServer:
    """The ``/{agent}/mcp`` route of one kernel (see the module)."""

    def __init__(self, kernel: KernelAPI) -> None:
        self.kernel = kernel
        self.server: Server[Any] = Server(
            "robutler",
            version="0.1.0",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # -- what the agent offers ------------------------------------------------------------

    def _ask_name(self, ctx: RequestContext, tools: dict[str, ToolSpec], config: McpConfig) -> str | None:
        if not config.ask_tool:
            return None
        return config.ask_tool if config.ask_tool not in tools else f"{config.ask_tool}_{ctx.agent.name}"[:64]

    def _offer(self, ctx: RequestContext) -> tuple[dict[str, ToolSpec], str | None]:
        config = settings_of(ctx) or McpConfig()
        tools = dict(self.kernel.agent_tools(ctx)) if config.serve_tools else {}
        return tools, self._ask_name(ctx, tools, config)

    async def _list_tools(self, _: Any, params: Any) -> types.ListToolsResult:
        ctx = CURRENT.get()
        tools, ask = self._offer(ctx)
        listed = [
            types.Tool(name=name, description=spec.description, input_schema=spec.parameters)
            for name, spec in tools.items()
        ]
        if ask is not None:
            about = ctx.agent.description or f"the agent {ctx.agent.name}"
            listed.append(
                types.Tool(
                    name=ask,
                    title=f"Ask {ctx.agent.name}",
                    description=f"Ask the agent {ctx.agent.name!r} ({about}); it answers in text, "
                    "using its own tools and model.",
                    input_schema=ASK_SCHEMA,
                )
            )
        return types.ListToolsResult(tools=listed)

    async def _call_tool(self, _: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        ctx = CURRENT.get()
        tools, ask = self._offer(ctx)
        arguments = params.arguments or {}
        if params.name == ask:
            message = arguments.get("message")
            if not isinstance(message, str) or not message:
                return _error("the ask tool needs a message (a non-empty string)")
            completion = await self.kernel.complete_agent(
                ctx.agent.name, [Message(role="user", content=message)], parent=ctx
            )
            return _text(completion.choices[0].message.text())
        if params.name not in tools:
            return _error(f"there is no tool named {params.name!r} available to you")
        result = await self.kernel.call_tool(ctx, params.name, json.dumps(arguments))
        return _text(result.content, error=result.is_error)

    # -- the route ------------------------------------------------------------------------

    async def handle(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """Answer one streamable-HTTP request for ``ctx``'s agent."""
        config = settings_of(ctx)
        if config is None or not config.serve:
            raise NotFound(
                f"agent {ctx.agent.name!r} is not served over MCP (give it skills: {{mcp: {{serve: true}}}})",
                code="route_not_found",
            )
        if request.method != "POST":
            # Stateless: no session to end, and no server-initiated messages for a GET stream
            # (the SDK would hold it open until request_timeout); clients take a 405.
            return HttpResponse(
                body=b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Method not allowed: '
                b'this MCP server is stateless; send each message with POST"}}',
                status=405,
                headers={"allow": "POST"},
            )
        manager = StreamableHTTPSessionManager(app=self.server, json_response=True, stateless=True)
        status = 500
        headers: dict[str, str] = {}
        body: list[bytes] = []
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.update((k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ()))
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 0),
        }
        token = CURRENT.set(ctx)
        try:
            async with manager.run():
                await manager.handle_request(scope, receive, send)
        finally:
            CURRENT.reset(token)
        return HttpResponse(body=b"".join(body), status=status, headers=headers)


def _text(text: str, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=error)


def _error(text: str) -> types.CallToolResult:
    return _text(f"Error: {text}", error=True)


__all__ = ["AgentMcpServer", "settings_of"]

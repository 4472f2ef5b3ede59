"""The plugin's routes: the agent card (public) and the JSON-RPC endpoint (through the
agent's request lifecycle).

The JSON-RPC endpoint is a plugin route with ``{agent}`` in its path, so the kernel runs the
agent's lifecycle around it: ``on_connection`` first (the auth skill answers a request
without valid credentials with 401 before anything here runs, the payments skill
reserves), ``finalize_connection`` after the answer. Inside, the SDK's ``JsonRpcDispatcher``
reads the request (protocol 1.0 methods, and 0.3's ``message/send``... on the same
endpoint) and calls :class:`~.handler.AgentRequestHandler`. Its answer is JSON, or a stream
rendered here as server-sent events for the kernel to send.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from a2a.server.context import ServerCallContext
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from starlette.requests import Request
from starlette.responses import JSONResponse

from robutler_specs import HttpRequest, HttpRoute, KernelAPI, NotFound, RequestContext

from .card import ENDPOINT, agent_config, base_url, card_json
from .config import A2ASettings
from .handler import CTX, AgentRequestHandler
from .tasks import TaskStore

DISPATCHERS = "a2a.dispatchers"
#: The card's path under an agent's base URL (the SDK's), and the one before protocol 0.3.
CARD_PATHS = (AGENT_CARD_WELL_KNOWN_PATH, "/.well-known/agent.json")


def settings_of(kernel: KernelAPI) -> A2ASettings:
    """The plugin's settings (``plugins: {a2a: {...}}``)."""
    return msgspec.convert(dict(kernel.plugin_settings("a2a")), A2ASettings)


def not_served(agent: str) -> NotFound:
    """A 404 for an agent that does not list the ``a2a`` skill."""
    return NotFound(
        f"agent {agent!r} is not served over A2A; list the a2a skill in its config (skills: {{a2a: {{}}}})",
        code="a2a_not_enabled",
    )


class _ContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context, carrying the request's Robutler context."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state[CTX] = request.scope[CTX]
        return context


def _dispatcher(kernel: KernelAPI, ctx: RequestContext) -> JsonRpcDispatcher:
    """The agent's dispatcher (one per agent spec, kept in ``kernel.state``)."""
    spec = ctx.agent
    config = agent_config(spec)
    if config is None:
        raise not_served(spec.name)
    known: dict[str, tuple[Any, JsonRpcDispatcher]] = kernel.state.setdefault(DISPATCHERS, {})
    entry = known.get(spec.name)
    if entry is None or entry[0] is not spec:  # a reloaded agent gets a new one
        settings = settings_of(kernel)
        tasks = TaskStore(kernel.state_store, spec.name, settings.task_ttl, settings.max_history)
        handler = AgentRequestHandler(kernel, spec.name, config, tasks)
        entry = (spec, JsonRpcDispatcher(handler, context_builder=_ContextBuilder(), enable_v0_3_compat=True))
        known[spec.name] = entry
    return entry[1]


def _starlette_request(request: HttpRequest, ctx: RequestContext) -> Request:
    scope = {
        "type": "http", "method": request.method, "path": request.path, "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
        CTX: ctx,
    }
    body = request.body

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


async def _events(iterator: Any) -> AsyncGenerator[bytes, None]:
    """The dispatcher's events (``{"data": ..., "event": ...}``) as server-sent events."""
    try:
        async for item in iterator:
            event = item.get("event")
            head = f"event: {event}\n".encode() if event else b""
            data = item.get("data", "")
            lines = b"".join(b"data: " + line.encode() + b"\n" for line in str(data).split("\n"))
            yield head + lines + b"\n"
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def routes(kernel: KernelAPI) -> list[HttpRoute]:
    """The card routes and the JSON-RPC route."""

    async def card(request: HttpRequest) -> Any:
        name = request.query["agent_name"]
        spec = await kernel.find_agent(name)
        config = None if spec is None else agent_config(spec)
        if spec is None or config is None:
            raise not_served(name) if spec is not None else NotFound(
                f"no agent named {name!r}", code="agent_not_found")
        return card_json(spec, config, base_url(request, settings_of(kernel), spec.name))

    async def jsonrpc(request: HttpRequest, ctx: RequestContext) -> Any:
        dispatcher = _dispatcher(kernel, ctx)
        response = await dispatcher.handle_requests(_starlette_request(request, ctx))
        if isinstance(response, JSONResponse):
            return msgspec.json.decode(bytes(response.body))
        return _events(getattr(response, "body_iterator"))  # noqa: B009  # a stream (message/stream)

    return [
        *(HttpRoute("/{agent_name}" + path, card, methods=("GET",), plugin="a2a") for path in CARD_PATHS),
        HttpRoute("/{agent}" + ENDPOINT, jsonrpc, methods=("POST",), plugin="a2a"),
    ]


__all__ = ["CARD_PATHS", "routes", "settings_of"]

"""The kernel's Starlette app: routes, pure-ASGI middleware, OpenAI-shaped errors, lifespan.

The layers, outside in: metrics, the front door (concurrency limit, security headers,
CORS: :mod:`.front`), the chat fast path, the Starlette app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from robutler_specs import RequestError

from ..metrics import MetricsMiddleware
from .chat import ChatDoor
from .completions import CompletionsDoor
from .endpoints import PluginRouteDoor, SkillEndpointDoor, no_route, not_allowed
from .front import FrontDoor
from .health import make_health_routes, monitor
from .responses_door import ResponsesDoor, StoredResponseDoor
from .routes import error_response, guarded, json_response, make_routes

if TYPE_CHECKING:
    from ..kernel import Kernel


def _plugin_routes(kernel: Kernel) -> list[BaseRoute]:
    return [
        Route(route.path, PluginRouteDoor(kernel, route if route.plugin else replace(route, plugin=plugin)),
              methods=list(route.methods))
        for plugin, routes in kernel.hooks.robutler_routes(kernel).items()
        for route in routes
    ]


class ChatFastPath:
    """Pure ASGI front door: ``POST .../chat/completions`` goes straight to the chat
    endpoint (the hot path skips Starlette's router and exception middleware, which cost
    more than the kernel's own work); everything else goes to the Starlette app."""

    SUFFIX = "/chat/completions"

    def __init__(self, kernel: Kernel, app: Starlette) -> None:
        self.app = app
        self.by_agent = ChatDoor(kernel, by_model=False)
        self.by_model = ChatDoor(kernel, by_model=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.endswith(self.SUFFIX):
                name = path[1 : -len(self.SUFFIX)]
                if name == "v1":
                    await self.by_model(scope, receive, send)
                    return
                if name and "/" not in name:
                    scope["path_params"] = {"agent": name}
                    await self.by_agent(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def openapi_document(kernel: Kernel) -> Any:
    """``GET /openapi.json``: the document of :mod:`..openapi`, built once on first use."""
    built: list[bytes] = []

    async def endpoint(request: Request) -> Response:
        if not built:
            from ..openapi import document

            built.append(bytes(json_response(document(kernel)).body))
        return Response(built[0], media_type="application/json")

    return endpoint


def build_app(kernel: Kernel) -> Any:
    """Build the ASGI app serving ``kernel``'s agents: metrics, the front door (limits,
    security headers, CORS), the chat fast path, and the Starlette app for every other
    route."""
    handlers = make_routes(kernel)
    health = make_health_routes(kernel)
    server = kernel.config.server
    routes: list[BaseRoute] = [
        Route("/", guarded(health["basic"]), methods=["GET"]),
        Route("/health", guarded(health["basic"]), methods=["GET"]),
        Route("/health/detailed", guarded(health["detailed"]), methods=["GET"]),
        Route("/ready", guarded(health["ready"]), methods=["GET"]),
        Route("/live", guarded(health["live"]), methods=["GET"]),
        Route("/openapi.json", guarded(openapi_document(kernel)), methods=["GET"]),
        Route("/v1/models", guarded(handlers["models"]), methods=["GET"]),
        Route("/v1/chat/completions", ChatDoor(kernel, by_model=True), methods=["POST"]),
        Route("/v1/completions", CompletionsDoor(kernel), methods=["POST"]),
        Route("/v1/responses", ResponsesDoor(kernel, by_model=True), methods=["POST"]),
        Route("/v1/responses/{response_id}", StoredResponseDoor(kernel, by_model=True), methods=["GET", "DELETE"]),
        # Plugin routes come before the kernel's own GET /agents, so a discovery plugin
        # that serves /agents replaces the simple built-in search when it is installed.
        *_plugin_routes(kernel),
        Route("/agents", guarded(handlers["agents"]), methods=["GET"]),
        Route("/{agent}/chat/completions", ChatDoor(kernel, by_model=False), methods=["POST"]),
        Route("/{agent}/responses", ResponsesDoor(kernel, by_model=False), methods=["POST"]),
        Route("/{agent}/responses/{response_id}", StoredResponseDoor(kernel, by_model=False),
              methods=["GET", "DELETE"]),
        Route("/{agent}", guarded(handlers["agent_info"]), methods=["GET"]),
        Route("/{agent}/{path:path}", SkillEndpointDoor(kernel), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        if exc.status_code == 404:
            return error_response(no_route(request.method, path))
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return error_response(not_allowed(request.method, path, [m.strip() for m in allowed.split(",") if m.strip()]))
        return error_response(RequestError(str(exc.detail), status=exc.status_code, code="http_error", headers=dict(exc.headers or {})))

    async def server_error(request: Request, exc: Exception) -> Response:
        from .responses import internal_error

        return error_response(internal_error(exc))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with kernel.lifespan():
            # Served (Hypercorn runs this lifespan): keep the health checks and
            # robutler_agent_health current in the background.
            watch = asyncio.create_task(monitor(kernel))
            try:
                yield
            finally:
                watch.cancel()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    # CORS lives in the front door (pure ASGI), so it never turns the chat fast path off.
    return MetricsMiddleware(FrontDoor(ChatFastPath(kernel, app), server))


__all__ = ["build_app", "json_response"]

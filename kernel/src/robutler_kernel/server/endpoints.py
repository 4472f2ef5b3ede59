"""Doors for HTTP that is not a chat: skills' ``@http`` endpoints and plugin routes.

Both go through the agent's :class:`~..turn.Turn` when they act for one: ``on_connection``
first (an auth skill identifies the caller), ``finalize_connection`` last, the body limit,
``request_timeout``, the disconnect watch, and the turn's headers on the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.routing import Match

from robutler_specs import (
    Forbidden,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    NotFound,
    RequestContext,
    RequestError,
    Unauthorized,
)

from ..config import RESERVED_AGENT_NAMES
from ..hooks import HookFailed
from ..turn import Answered, Turn, too_slow
from .door import Door, Receive, Scope, Send, answer_sse, find_agent, headers_of
from .responses import encode, send_json

if TYPE_CHECKING:
    from ..kernel import Kernel

log = logging.getLogger("robutler.server")


def no_route(method: str, path: str) -> NotFound:
    """A 404 for a path no route serves; a trailing slash is pointed out."""
    hint = ""
    if len(path) > 1 and path.endswith("/"):
        hint = f" (routes take no trailing slash: {path.rstrip('/')})"
    return NotFound(f"no route {method} {path}{hint}", code="route_not_found")


def not_allowed(method: str, path: str, allowed: list[str]) -> RequestError:
    """A 405 with ``Allow`` listing the methods the path takes."""
    allow = ", ".join(sorted(allowed))
    return RequestError(
        f"{method} is not allowed on {path}; it takes {allow}",
        status=405,
        code="method_not_allowed",
        headers={"Allow": allow},
    )


def kernel_route_methods(scope: Scope) -> list[str]:
    """The methods of the kernel's own routes whose path is the request's (for a 405)."""
    router = scope.get("router")
    methods: set[str] = set()
    for route in getattr(router, "routes", ()):
        if isinstance(getattr(route, "app", None), SkillEndpointDoor):
            continue
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    methods.discard("HEAD")
    return sorted(methods)


def handler_failed(plugin: str | None, what: str, exc: Exception) -> HookFailed:
    """A 500 for a plugin's handler that crashed: it names the plugin, never a traceback
    (that goes to the log)."""
    log.error("plugin %r failed in its %s", plugin, what, exc_info=exc)
    return HookFailed(
        f"plugin {plugin!r} failed in its {what}: {type(exc).__name__}: {exc}", plugin=plugin, code="handler_failed"
    )


def http_request(scope: Scope, path: str, body: bytes, query: dict[str, str]) -> HttpRequest:
    """The :class:`HttpRequest` a skill or plugin handler receives."""
    return HttpRequest(method=scope["method"], path=path, query=query, headers=headers_of(scope), body=body)


def query_of(scope: Scope) -> dict[str, str]:
    """The query string as a dict (the last value of a repeated name wins)."""
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"").decode("latin-1")
    return dict(parse_qsl(raw, keep_blank_values=True))


async def answer(turn: Turn, work: Awaitable[Any], receive: Receive, send: Send) -> None:
    """Run a handler's work under the turn's deadline and disconnect watch, then send what
    it returned: an :class:`HttpResponse` as it is, anything else as a 200 JSON answer;
    the turn's headers (``x-request-id``, what hooks set) on both."""
    async with turn.guard(receive):
        result = await work
    await send_answer(turn, result, send)


async def send_answer(turn: Turn, result: Any, send: Send) -> None:
    """Send a handler's value: an :class:`HttpResponse` as it is, anything else as a 200
    JSON answer; the turn's headers on both."""
    if not isinstance(result, HttpResponse):
        await send_json(send, 200, encode(result), turn.headers())
        return
    own = {k.lower(): v for k, v in result.headers.items() if k.lower() != "content-length"}
    headers = {"content-type": "application/json", **own, **turn.headers()}
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(result.body)).encode()))
    await send({"type": "http.response.start", "status": result.status, "headers": raw})
    await send({"type": "http.response.body", "body": result.body})


class SkillEndpointDoor(Door):
    """``/{agent}/{path}``: the agent's skills' ``@http`` endpoints."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        name: str = scope["path_params"]["agent"]
        path: str = scope["path_params"]["path"]
        method: str = scope["method"]
        full = f"/{name}/{path}"
        try:
            if name in RESERVED_AGENT_NAMES:
                raise no_route(method, full)
            agent = await find_agent(self.kernel, scope, name)
        except NotFound as exc:
            # A kernel or plugin route's path with another method (DELETE /v1/models) lands here.
            allowed = kernel_route_methods(scope)
            raise not_allowed(method, full, allowed) if allowed else exc from None
        endpoint = agent.http_endpoint(path, method)
        if endpoint is None:
            allowed = ["POST"] if path == "chat/completions" else agent.http_methods(path)
            if allowed:
                raise not_allowed(method, full, allowed)
            if path.endswith("/") or not path:
                raise no_route(method, full)
            raise NotFound(f"agent {agent.name!r} has no endpoint {method} /{path}", code="route_not_found")
        info, fn = endpoint
        request = http_request(scope, path, await self.body(scope, receive), query_of(scope))
        ctx = RequestContext(agent.spec, [], headers=request.headers)

        async def work(ctx: RequestContext) -> Any:
            if not ctx.identity.allows(info.scope):
                message = f"this endpoint needs the {info.scope!r} scope"
                if ctx.identity.user_id is None:
                    raise Unauthorized(message, headers={"WWW-Authenticate": 'Bearer realm="robutler"'})
                raise Forbidden(message)
            try:
                result = fn(ctx, request)
                if hasattr(result, "__await__"):
                    result = await result
            except RequestError:
                raise
            except Exception as exc:
                skill = getattr(getattr(fn, "__self__", None), "name", None)
                raise handler_failed(skill, f"@http endpoint {method} /{path}", exc) from exc
            return result

        turn = self.turn(scope, agent, ctx)
        await answer(turn, turn.run(work), receive, send)


class PluginRouteDoor(Door):
    """A route a plugin adds (``robutler_routes``).

    A path with an ``{agent}`` parameter acts for that agent: it goes through the agent's
    turn and the handler is called as ``handler(request, ctx)``; it may also answer with
    an async iterator of pre-rendered server-sent events (bytes), streamed under the
    turn's deadline and disconnect watch, ``finalize_connection`` after the last. Any other
    route is called as ``handler(request)``, within the body limit and ``request_timeout``.
    """

    def __init__(self, kernel: Kernel, route: HttpRoute) -> None:
        super().__init__(kernel)
        self.route = route
        self.for_agent = "{agent}" in route.path

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = {k: str(v) for k, v in scope.get("path_params", {}).items()}
        body = await self.body(scope, receive)
        request = http_request(scope, scope["path"], body, {**query_of(scope), **params})
        route = self.route
        handler: Callable[..., Awaitable[Any]] = route.handler

        async def call(*args: Any) -> Any:
            try:
                return await handler(*args)
            except RequestError:
                raise
            except Exception as exc:
                raise handler_failed(route.plugin, f"route {scope['method']} {route.path}", exc) from exc

        if not self.for_agent:
            timeout = self.kernel.config.server.request_timeout
            try:
                async with asyncio.timeout(timeout):
                    result = await call(request)
            except TimeoutError:
                raise too_slow(timeout) from None
            await send_json(send, 200, encode(result))
            return
        agent = await find_agent(self.kernel, scope, params["agent"])
        ctx = RequestContext(agent.spec, [], headers=request.headers)

        async def work(ctx: RequestContext) -> Any:
            return await call(request, ctx)

        turn = self.turn(scope, agent, ctx)
        pieces = turn.serve(work)
        try:
            async with turn.guard(receive):
                first = await pieces.__anext__()
        except BaseException:
            await pieces.aclose()
            raise
        if isinstance(first, Answered):
            await pieces.aclose()
            await send_answer(turn, first.value, send)
            return
        # A stream: pre-rendered server-sent events, sent as they come under the turn's guard.
        await answer_sse(turn, _from(first, pieces), receive, send, render=_raw, done=b"")


def _raw(piece: bytes | str) -> bytes:
    return piece.encode() if isinstance(piece, str) else piece


async def _from(first: Any, rest: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    """``first``, then ``rest`` (closed when this is)."""
    try:
        yield first
        async for piece in rest:
            yield piece
    finally:
        await rest.aclose()


__all__ = ["PluginRouteDoor", "SkillEndpointDoor", "handler_failed", "no_route", "not_allowed"]

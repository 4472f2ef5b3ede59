"""Kernel-level HTTP routes a plugin adds through the ``robutler_routes`` hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .context import HttpRequest


@dataclass(frozen=True)
class HttpRoute:
    """A route served by the kernel outside any agent.

    ``handler(request)`` receives an :class:`~robutler_specs.HttpRequest` and returns a
    JSON-serialisable value (``200 application/json``) or raises a ``RequestError``.
    ``path`` may hold Starlette-style parameters (``/payments/{account}``), passed in
    ``request.query`` under their names. A route whose path has ``{agent}`` acts for
    that agent (``handler(request, ctx)``, through its whole request lifecycle); its
    handler may run the agent's conversation with ``kernel.run_request(ctx)`` /
    ``kernel.stream_request(ctx)``, and may answer with an async iterator of
    pre-rendered server-sent events (``bytes``: ``b"data: ...\\n\\n"``), which the kernel
    streams as ``text/event-stream`` under the request's deadline and disconnect watch,
    ``finalize_connection`` after the last (an error before the first event is answered
    with its status; after it, the stream ends with an ``{"error": ...}`` event).
    A handler that speaks another protocol (the MCP plugin's ``/{agent}/mcp``) returns
    an :class:`HttpResponse` to choose the status, headers and body itself.
    """

    path: str
    handler: Callable[[HttpRequest], Awaitable[Any]]
    methods: tuple[str, ...] = ("GET",)
    plugin: str | None = None


@dataclass(frozen=True)
class HttpResponse:
    """A raw answer from a plugin route or ``@http`` endpoint: sent as it is, with the
    request's own headers (``x-request-id``, what ``finalize_connection`` set) added.

    :ivar body: the response body.
    :ivar status: the HTTP status.
    :ivar headers: response headers (``content-type`` among them; JSON when absent).
    """

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


__all__ = ["HttpResponse", "HttpRoute"]

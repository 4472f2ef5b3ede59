"""The front of the server, in pure ASGI: the concurrency limit, security headers, CORS.

It sits under the metrics middleware and above everything else (the chat fast path
included), so its three jobs cost the same on every route and none of them turns the fast
path off:

* **Concurrency limit** (``server.max_concurrent_requests``): a plain counter of the
  requests in flight (a stream counts until its last byte). A request beyond it is
  answered at once with 503 ``server_overloaded`` and ``Retry-After: 1``, its body left
  unread: an overloaded server says so instead of queueing work that would end in client
  time-outs. Health routes are never refused, so probes see a live, busy process.
* **Security headers** (``server.security_headers``, ``server.strict_transport_security``):
  precomputed header tuples added to every answer's head; an answer that sets its own
  ``Content-Security-Policy`` (an HTML page of a plugin) keeps it.
* **CORS** (``server.cors_origins``): preflight ``OPTIONS`` answered here (204, or 403 for
  an origin not allowed); an allowed origin's answers carry ``Access-Control-Allow-Origin``
  and expose the kernel's headers (``x-request-id``, ``x-ratelimit-*``...).

The hot path pays one counter, one closure and one list copy of the answer's headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .responses import encode

if TYPE_CHECKING:
    from ..config import ServerConfig

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Header = tuple[bytes, bytes]

#: Paths never refused for load: probes must see a live (if busy) process.
HEALTH_PATHS = frozenset({"/", "/health", "/health/detailed", "/ready", "/live"})

#: For JSON APIs: nothing may be loaded, framed or sniffed from an answer.
CONTENT_SECURITY_POLICY = b"default-src 'none'; frame-ancestors 'none'"

#: Response headers a browser client may read (CORS hides all others).
EXPOSED_HEADERS = (
    b"x-request-id, x-robutler-agent, x-robutler-cost, retry-after, "
    b"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
    b"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"
)
CORS_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_MAX_AGE = b"600"
_CSP = b"content-security-policy"


def security_headers(server: ServerConfig) -> list[Header]:
    """The headers every answer gets (without the CSP, added unless the answer has one)."""
    headers: list[Header] = []
    if server.security_headers:
        headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
    if server.strict_transport_security:
        headers.append((b"strict-transport-security", server.strict_transport_security.encode("latin-1")))
    return headers


def overloaded_body(limit: int) -> bytes:
    """The 503 body of a request beyond ``server.max_concurrent_requests``."""
    return encode({
        "error": {
            "message": f"the server is at its limit of {limit} concurrent requests "
                       "(server.max_concurrent_requests); retry in a moment",
            "type": "server_error",
            "param": None,
            "code": "server_overloaded",
        }
    })


class FrontDoor:
    """Pure ASGI middleware: the concurrency limit, security headers and CORS.

    :param app: the app behind it (the chat fast path and the Starlette app).
    :param server: the ``server:`` settings.
    """

    def __init__(self, app: Any, server: ServerConfig) -> None:
        self.app = app
        #: Requests in flight now (all routes, health included).
        self.active = 0
        #: Requests refused for load since start.
        self.refused = 0
        self.limit = server.max_concurrent_requests or 0
        self.extra = security_headers(server)
        self.csp = server.security_headers
        #: ``extra`` and the CSP: what an answer without its own CSP gets.
        self.tail = [*self.extra, (_CSP, CONTENT_SECURITY_POLICY)] if self.csp else self.extra
        origins = server.cors_origins
        self.any_origin = "*" in origins
        self.origins = frozenset(o.rstrip("/").encode("latin-1") for o in origins if o != "*")
        self.cors = bool(origins)
        self.overloaded: tuple[list[Header], bytes] | None = None
        if self.limit:
            body = overloaded_body(self.limit)
            self.overloaded = (
                [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                 (b"retry-after", b"1")],
                body,
            )

    def _allowed(self, origin: bytes) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or ``None``."""
        if self.any_origin:
            return b"*"
        return origin if origin.rstrip(b"/") in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.extra
        tail = self.tail
        if self.cors:
            origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
            if origin is not None:
                allowed = self._allowed(origin)
                if scope["method"] == "OPTIONS" and any(
                    k == b"access-control-request-method" for k, _ in scope["headers"]
                ):
                    await self._preflight(scope, send, origin, allowed)
                    return
                if allowed is not None:
                    cors = [(b"access-control-allow-origin", allowed), (b"vary", b"Origin"),
                            (b"access-control-expose-headers", EXPOSED_HEADERS)]
                    extra, tail = [*extra, *cors], [*tail, *cors]
        if self.limit and self.active >= self.limit and self._refusable(scope):
            self.refused += 1
            await self._overloaded(send, extra)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers") or ()
                # A plain loop: cheaper than any() over a generator for a handful of headers.
                for name, _ in headers:
                    if name == _CSP:
                        message["headers"] = [*headers, *extra]
                        break
                else:
                    message["headers"] = [*headers, *tail]
            await send(message)

        self.active += 1
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self.active -= 1

    @staticmethod
    def _refusable(scope: Scope) -> bool:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        return path not in HEALTH_PATHS

    async def _overloaded(self, send: Send, extra: list[Header]) -> None:
        assert self.overloaded is not None
        headers, body = self.overloaded
        headers = [*headers, *extra]
        if self.csp:
            headers.append((_CSP, CONTENT_SECURITY_POLICY))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _preflight(self, scope: Scope, send: Send, origin: bytes, allowed: bytes | None) -> None:
        """Answer a CORS preflight: 204 with what the origin may do, 403 if it may not."""
        extra = list(self.extra)
        if self.csp:
            extra.append((_CSP, CONTENT_SECURITY_POLICY))
        if allowed is None:
            body = encode({"error": {
                "message": f"origin {origin.decode('latin-1')!r} is not allowed (server.cors_origins)",
                "type": "permission_error", "param": None, "code": "cors_origin_not_allowed",
            }})
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"vary", b"Origin"), *extra]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        requested = next((v for k, v in scope["headers"] if k == b"access-control-request-headers"), None)
        headers = [
            (b"access-control-allow-origin", allowed),
            (b"access-control-allow-methods", CORS_METHODS),
            (b"access-control-max-age", CORS_MAX_AGE),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            *extra,
        ]
        if requested:
            # Any request header is allowed: credentials travel in Authorization, never cookies.
            headers.append((b"access-control-allow-headers", requested))
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


__all__ = ["HEALTH_PATHS", "FrontDoor", "security_headers"]

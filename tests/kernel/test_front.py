"""The front door (server/front.py): security headers on every route, CORS with the fast path."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.server.app import ChatFastPath
from robutler_kernel.server.front import CONTENT_SECURITY_POLICY, FrontDoor
from robutler_kernel.testing import kernel_client, make_kernel

CHAT = {"messages": [{"role": "user", "content": "hi"}]}

#: Every kind of answer: health, listings, info, chat (JSON, stream, /v1), the Responses
#: API, errors (404, 405, 400, 413) and the Starlette router's own.
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/", None),
    ("GET", "/health", None),
    ("GET", "/health/detailed", None),
    ("GET", "/ready", None),
    ("GET", "/live", None),
    ("GET", "/v1/models", None),
    ("GET", "/agents", None),
    ("GET", "/assistant", None),
    ("POST", "/assistant/chat/completions", CHAT),
    ("POST", "/assistant/chat/completions", {**CHAT, "stream": True}),
    ("POST", "/v1/chat/completions", {**CHAT, "model": "assistant"}),
    ("POST", "/v1/responses", {"model": "assistant", "input": "hi"}),
    ("POST", "/v1/completions", {"model": "assistant", "prompt": "hi"}),
    ("POST", "/nobody/chat/completions", CHAT),
    ("POST", "/assistant/chat/completions", {"messages": []}),
    ("GET", "/v1/chat/completions", None),
    ("GET", "/nobody/some/where", None),
    ("POST", "/assistant/chat/completions", "x" * 5000),
]


async def _answers(server: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    kernel = make_kernel(plugins=[scripted], server={"metrics_port": None, "max_body_bytes": 4096, **(server or {})})
    out = []
    async with kernel_client(kernel) as client:
        for method, path, body in ROUTES:
            if isinstance(body, str):
                response = await client.request(method, path, content=body, headers=headers)
            else:
                response = await client.request(method, path, json=body, headers=headers)
            out.append(response)
    return out


def test_every_route_answers_with_the_security_headers() -> None:
    answers = asyncio.run(_answers())
    statuses = {r.status_code for r in answers}
    assert {200, 400, 404, 405, 413} <= statuses
    for (method, path, _), response in zip(ROUTES, answers, strict=True):
        where = f"{method} {path} ({response.status_code})"
        assert response.headers["x-content-type-options"] == "nosniff", where
        assert response.headers["referrer-policy"] == "no-referrer", where
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY.decode(), where
        assert "strict-transport-security" not in response.headers, where
        assert "access-control-allow-origin" not in response.headers, where


def test_hsts_only_when_configured_and_headers_can_be_turned_off() -> None:
    value = "max-age=31536000; includeSubDomains"
    answers = asyncio.run(_answers({"strict_transport_security": value}))
    assert all(r.headers["strict-transport-security"] == value for r in answers)
    answers = asyncio.run(_answers({"security_headers": False}))
    assert not any("x-content-type-options" in r.headers or "content-security-policy" in r.headers for r in answers)


async def _raw(app: Any, scope: dict[str, Any], response_headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Run ``app`` (a FrontDoor) on ``scope`` in front of an app that answers with
    ``response_headers``; the answer's head."""
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"<html></html>"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await FrontDoor(inner, app)(scope, receive, send)
    return dict(sent[0]["headers"])


def test_an_answer_with_its_own_csp_keeps_it() -> None:
    server = make_kernel(plugins=[scripted]).config.server
    scope = {"type": "http", "method": "GET", "path": "/portal", "headers": []}
    own = b"default-src 'self'"
    head = asyncio.run(_raw(server, scope, [(b"content-type", b"text/html"), (b"content-security-policy", own)]))
    assert head[b"content-security-policy"] == own
    assert head[b"x-content-type-options"] == b"nosniff"


# -- CORS --------------------------------------------------------------------------------------


ORIGIN = "https://app.example.com"


def _cors_kernel(origins: list[str]) -> Any:
    return make_kernel(plugins=[scripted], server={"metrics_port": None, "cors_origins": origins})


def test_cors_keeps_the_chat_fast_path() -> None:
    app = _cors_kernel([ORIGIN]).asgi_app()
    front = app.app
    assert isinstance(front, FrontDoor) and isinstance(front.app, ChatFastPath)


@pytest.mark.parametrize("path", ["/assistant/chat/completions", "/v1/chat/completions", "/v1/models"])
def test_preflight_of_an_allowed_origin(path: str) -> None:
    async def main() -> httpx.Response:
        async with kernel_client(_cors_kernel([ORIGIN])) as client:
            return await client.options(path, headers={
                "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            })

    response = asyncio.run(main())
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "authorization, content-type"
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_preflight_of_another_origin_is_refused() -> None:
    async def main() -> httpx.Response:
        async with kernel_client(_cors_kernel([ORIGIN])) as client:
            return await client.options("/v1/chat/completions", headers={
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})

    response = asyncio.run(main())
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert response.json()["error"]["code"] == "cors_origin_not_allowed"


def test_answers_to_an_allowed_origin_carry_cors_headers() -> None:
    async def main() -> list[httpx.Response]:
        async with kernel_client(_cors_kernel([ORIGIN])) as client:
            return [
                await client.post("/assistant/chat/completions", json=CHAT, headers={"Origin": ORIGIN}),
                await client.post("/assistant/chat/completions", json={**CHAT, "stream": True}, headers={"Origin": ORIGIN}),
                await client.post("/nobody/chat/completions", json=CHAT, headers={"Origin": ORIGIN}),
                await client.get("/health", headers={"Origin": ORIGIN}),
                await client.post("/assistant/chat/completions", json=CHAT, headers={"Origin": "https://evil.example"}),
                await client.post("/assistant/chat/completions", json=CHAT),
            ]

    *allowed, other, none = asyncio.run(main())
    for response in allowed:
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["vary"] == "Origin"
        assert "x-request-id" in response.headers["access-control-expose-headers"]
        assert "x-ratelimit-remaining-requests" in response.headers["access-control-expose-headers"]
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    assert none.status_code == 200 and "access-control-allow-origin" not in none.headers


def test_any_origin() -> None:
    async def main() -> list[httpx.Response]:
        async with kernel_client(_cors_kernel(["*"])) as client:
            return [
                await client.options("/v1/chat/completions", headers={
                    "Origin": "https://x.example", "Access-Control-Request-Method": "POST"}),
                await client.post("/v1/chat/completions", json={**CHAT, "model": "assistant"},
                                  headers={"Origin": "https://y.example"}),
            ]

    preflight, answer = asyncio.run(main())
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "*"


def test_options_without_cors_is_not_a_preflight() -> None:
    async def main() -> httpx.Response:
        async with kernel_client(make_kernel(plugins=[scripted])) as client:
            return await client.options("/v1/chat/completions", headers={
                "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})

    response = asyncio.run(main())
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers

"""The optional portal check, against a small local aiohttp portal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web

from robutler_kernel.testing import kernel_client
from robutler_plugin_auth.portal import TTLCache

from .helpers import ALICE_KEY, agent, auth_skill, build, error_of, keys_config, openai_client, post, whoami

GOOD = "portal-token-good-0123456789"
ADMIN = "portal-token-admin-012345678"


class FakePortal:
    """``GET /api/auth/validate``: known tokens, a rejected one, a broken one, a slow one."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.url = ""

    async def validate(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.calls.append(token)
        if token == GOOD:
            return web.json_response({"user_id": "carol", "scopes": ["owner"], "plan": "pro"})
        if token == ADMIN:
            return web.json_response({"valid": True, "sub": "dave", "scope": "admin openid"})
        if token == "portal-invalid-flag-0123":
            return web.json_response({"valid": False})
        if token == "portal-broken-0123456789":
            return web.Response(status=500, text="boom")
        if token == "portal-not-json-01234567":
            return web.Response(status=200, text="<html>")
        if token == "portal-slow-012345678901":
            await asyncio.sleep(5)
        return web.json_response({"error": "unknown token"}, status=401)


@pytest.fixture
async def auth_portal() -> AsyncIterator[FakePortal]:
    portal = FakePortal()
    app = web.Application()
    app.router.add_get("/api/auth/validate", portal.validate)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    portal.url = f"http://127.0.0.1:{port}/"
    try:
        yield portal
    finally:
        await runner.cleanup()


def portal_agent(url: str, **extra: Any) -> dict[str, Any]:
    return agent(keys_config(portal_url=url, portal_timeout=0.5, **extra), owner="carol")


async def test_portal_validates_unknown_tokens_and_answers_are_cached(auth_portal: FakePortal) -> None:
    kernel = build({"bot": portal_agent(auth_portal.url)})
    async with openai_client(kernel, GOOD) as client:
        first = await whoami(client)
        second = await whoami(client)
    # owner is granted because carol owns the agent, not because the portal said so
    assert first == second == {"user_id": "carol", "scopes": ["all", "owner"], "source": "portal"}
    async with openai_client(kernel, ADMIN) as client:
        assert await whoami(client) == {"user_id": "dave", "scopes": ["all", "admin"], "source": "portal"}
    async with openai_client(kernel, ALICE_KEY) as client:  # a configured key never goes to the portal
        assert (await whoami(client))["source"] == "api_key"
    assert auth_portal.calls == [GOOD, ADMIN]


async def test_portal_attributes_reach_the_identity(auth_portal: FakePortal) -> None:
    kernel = build({"bot": portal_agent(auth_portal.url)})
    identity = await auth_skill(kernel).authenticate({"authorization": f"Bearer {GOOD}"}, kernel.agents["bot"])
    assert identity.attributes == {"plan": "pro"}
    await auth_skill(kernel).stop()


async def test_concurrent_requests_with_one_token_share_one_portal_call(auth_portal: FakePortal) -> None:
    kernel = build({"bot": portal_agent(auth_portal.url)})
    async with kernel_client(kernel) as http:
        responses = await asyncio.gather(*(post(http, {"authorization": f"Bearer {GOOD}"}) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert auth_portal.calls == [GOOD]


@pytest.mark.parametrize("bad", ["portal-unknown-0123456789", "portal-invalid-flag-0123"])
async def test_portal_rejection_is_a_401_and_is_cached(auth_portal: FakePortal, bad: str) -> None:
    kernel = build({"bot": portal_agent(auth_portal.url)})
    async with kernel_client(kernel) as http:
        responses = [await post(http, {"authorization": f"Bearer {bad}"}) for _ in range(2)]
    for response in responses:
        assert response.status_code == 401
        assert error_of(response)["message"] == "the auth portal does not accept this token"
        assert response.headers["www-authenticate"].startswith('Bearer realm="robutler", error="invalid_token"')
    assert auth_portal.calls == [bad]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("portal-broken-0123456789", "HTTP 500"),
        ("portal-not-json-01234567", "its answer is not JSON"),
        ("portal-slow-012345678901", "no answer within 0.5 s"),
    ],
)
async def test_portal_failure_is_a_503_naming_portal_url(auth_portal: FakePortal, bad: str, reason: str) -> None:
    kernel = build({"bot": portal_agent(auth_portal.url)})
    started = time.monotonic()
    async with openai_client(kernel, bad) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 3
    error = caught.value.response.json()["error"]
    assert caught.value.status_code == 503 and error["code"] == "auth_portal_unavailable"
    base = auth_portal.url.rstrip("/")
    assert error["message"] == (
        f"the auth portal at {base} could not validate the token ({reason}); "
        "check skills.auth.portal_url and that the portal is up"
    )


async def test_portal_down_is_a_503_and_the_health_check_says_so(auth_portal: FakePortal) -> None:
    kernel = build({"bot": portal_agent("http://127.0.0.1:9/")})  # nothing listens on the discard port
    async with kernel_client(kernel) as http:
        response = await post(http, {"authorization": "Bearer some-portal-token-0123456"})
        detailed = await http.get("/health/detailed")
    assert response.status_code == 503
    assert "the auth portal at http://127.0.0.1:9 could not validate the token" in error_of(response)["message"]
    check = detailed.json()["checks"]["auth portal http://127.0.0.1:9"]
    assert detailed.status_code == 503 and check["status"] == "unhealthy"
    assert "the auth portal at http://127.0.0.1:9 does not answer" in check["error"]
    kernel = build({"bot": portal_agent(auth_portal.url)})
    skill = auth_skill(kernel)
    (check,) = skill.health_checks().values()
    assert await check() == "HTTP 401"
    await skill.stop()


def test_ttl_cache_expires_and_evicts() -> None:
    cache = TTLCache(ttl=0.05, size=2)
    cache.put(b"a", 1)
    cache.put(b"b", 2)
    assert cache.get(b"a") == 1
    cache.put(b"c", 3)  # evicts the least recently used: b
    assert cache.get(b"b") is None and cache.get(b"a") == 1 and len(cache) == 2
    time.sleep(0.06)
    assert cache.get(b"a") is None
    off = TTLCache(ttl=0, size=10)
    off.put(b"a", 1)
    assert off.get(b"a") is None

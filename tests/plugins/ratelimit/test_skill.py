"""The rate_limit skill over HTTP: 429 with Retry-After and OpenAI's x-ratelimit-* headers,
per caller, per agent and global, tokens counted after the request, Redis shared by two
kernels, a backend that fails."""

from __future__ import annotations

import importlib.metadata

import pytest

from robutler_kernel.testing import kernel_client
from robutler_plugin_ratelimit import RateLimitSkill

from .helpers import ALICE, BOB, CHAT, REDIS_URL, Clock, backend, build, unique_prefix

PATH = "/bot/chat/completions"


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["ratelimit"] == "robutler_plugin_ratelimit"
    assert RateLimitSkill.name == "rate_limit"
    # After auth (it sets the identity), before payments (a refusal reserves nothing).
    assert 5 < RateLimitSkill.priority < 10


async def test_requests_per_minute_per_caller_then_429() -> None:
    kernel = build({"bot": {"requests_per_minute": 3}}, with_auth=True)
    async with kernel_client(kernel) as client:
        clock = backend(kernel).clock = Clock()
        answers = [await client.post(PATH, json=CHAT, headers=_as(ALICE)) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
        assert all(a.headers["x-ratelimit-limit-requests"] == "3" for a in answers)
        assert answers[0].headers["x-ratelimit-reset-requests"] == "20s"
        refused = answers[-1]
        assert refused.headers["retry-after"] == "20"
        assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert refused.headers["x-content-type-options"] == "nosniff"
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
        assert "3 per minute per caller on agent 'bot'" in error["message"]
        assert "agents.bot.skills.rate_limit.requests_per_minute" in error["message"]
        # Another caller has its own bucket.
        assert (await client.post(PATH, json=CHAT, headers=_as(BOB))).status_code == 200
        # One comes back every 20 s.
        clock.advance(19.9)
        assert (await client.post(PATH, json=CHAT, headers=_as(ALICE))).status_code == 429
        clock.advance(0.1)
        assert (await client.post(PATH, json=CHAT, headers=_as(ALICE))).status_code == 200


async def test_streams_and_every_door_are_limited_alike() -> None:
    kernel = build({"bot": {"requests_per_minute": 2}})
    async with kernel_client(kernel) as client:
        backend(kernel).clock = Clock()
        stream = await client.post(PATH, json={**CHAT, "stream": True})
        assert stream.status_code == 200 and stream.headers["x-ratelimit-remaining-requests"] == "1"
        assert (await client.post("/v1/chat/completions", json={**CHAT, "model": "bot"})).status_code == 200
        for answer in [await client.post("/v1/responses", json={"model": "bot", "input": "hi"}),
                       await client.post(PATH, json={**CHAT, "stream": True})]:
            assert answer.status_code == 429 and answer.headers["retry-after"] == "30"


async def test_tokens_are_counted_after_the_request_and_refuse_the_next() -> None:
    kernel = build({"bot": {"tokens_per_minute": 10}})
    async with kernel_client(kernel) as client:
        clock = backend(kernel).clock = Clock()
        first = await client.post(PATH, json=CHAT)
        used = first.json()["usage"]["total_tokens"]
        assert first.status_code == 200 and 0 < used < 10
        # A JSON answer's token headers show the budget after this request.
        assert first.headers["x-ratelimit-limit-tokens"] == "10"
        assert first.headers["x-ratelimit-remaining-tokens"] == str(10 - used)
        second = await client.post(PATH, json=CHAT)  # goes over: allowed, counted
        assert second.status_code == 200 and second.headers["x-ratelimit-remaining-tokens"] == "0"
        third = await client.post(PATH, json=CHAT)
        assert third.status_code == 429
        error = third.json()["error"]
        assert error["code"] == "tokens_rate_limit_exceeded"
        over = 2 * used - 10  # tokens beyond the budget: 6 s each at 10 a minute
        assert third.headers["retry-after"] == str(max(1, -(-over * 6 // 1)))
        clock.advance(over * 6.0)
        assert (await client.post(PATH, json=CHAT)).status_code == 200


async def test_global_limits_span_agents() -> None:
    kernel = build({"bot": {}, "other": {"requests_per_minute": 100}}, {"requests_per_minute": 2})
    async with kernel_client(kernel) as client:
        backend(kernel).clock = Clock()
        assert (await client.post(PATH, json=CHAT)).status_code == 200
        assert (await client.post("/other/chat/completions", json=CHAT)).status_code == 200
        refused = await client.post("/other/chat/completions", json=CHAT)
        assert refused.status_code == 429
        assert "across agents (plugins.ratelimit.requests_per_minute)" in refused.json()["error"]["message"]
        # The headers show the tightest bucket: the global one.
        assert refused.headers["x-ratelimit-limit-requests"] == "2"


async def test_anonymous_callers_by_a_trusted_header() -> None:
    kernel = build({"bot": {"requests_per_minute": 1}}, {"anonymous_key_header": "X-Forwarded-For"})
    async with kernel_client(kernel) as client:
        backend(kernel).clock = Clock()
        one = {"X-Forwarded-For": "10.0.0.1, 10.9.9.9"}
        assert (await client.post(PATH, json=CHAT, headers=one)).status_code == 200
        assert (await client.post(PATH, json=CHAT, headers={"X-Forwarded-For": "10.0.0.1"})).status_code == 429
        assert (await client.post(PATH, json=CHAT, headers={"X-Forwarded-For": "10.0.0.2"})).status_code == 200
        # Without the header, anonymous callers share one bucket.
        assert (await client.post(PATH, json=CHAT)).status_code == 200
        assert (await client.post(PATH, json=CHAT)).status_code == 429


async def test_no_limits_no_headers_and_agent_info() -> None:
    kernel = build({"bot": {}})
    async with kernel_client(kernel) as client:
        answer = await client.post(PATH, json=CHAT)
        assert answer.status_code == 200 and "x-ratelimit-limit-requests" not in answer.headers
        info = (await client.get("/bot")).json()
        assert info["skill_info"]["rate_limit"] == {
            "requests_per_minute": None, "tokens_per_minute": None,
            "global_requests_per_minute": None, "global_tokens_per_minute": None,
        }


async def test_two_kernels_share_limits_on_redis() -> None:
    settings = {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": unique_prefix()}
    agents = {"bot": {"requests_per_minute": 3, "tokens_per_minute": 1000}}
    first, second = build(agents, settings), build(agents, settings)
    clock = Clock()
    async with kernel_client(first) as a, kernel_client(second) as b:
        backend(first).clock = backend(second).clock = clock
        statuses = []
        for client in (a, b, a, b):
            statuses.append((await client.post(PATH, json=CHAT)).status_code)
        assert statuses == [200, 200, 200, 429]
        clock.advance(20)
        assert (await b.post(PATH, json=CHAT)).status_code == 200
        assert (await a.post(PATH, json=CHAT)).status_code == 429
        health = (await a.get("/health/detailed")).json()
        assert "ratelimit:redis" in str(health)
        client = backend(first).client
        keys = [k async for k in client.scan_iter(match=settings["key_prefix"] + "*")]
        assert len(keys) == 2  # the caller's request and token buckets of agent bot
        await client.delete(*keys)


@pytest.mark.parametrize(("fail_open", "status"), [(True, 200), (False, 503)])
async def test_a_backend_that_is_down(fail_open: bool, status: int) -> None:
    settings = {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0", "fail_open": fail_open, "timeout_seconds": 0.2}
    kernel = build({"bot": {"requests_per_minute": 3}}, settings)
    async with kernel_client(kernel) as client:
        answer = await client.post(PATH, json=CHAT)
        assert answer.status_code == status
        if status == 503:
            assert answer.json()["error"]["code"] == "rate_limit_backend_unavailable"
            assert answer.headers["retry-after"] == "1"


async def test_a_bad_setting_is_named() -> None:
    kernel = build({"bot": {"requests_per_minute": 3}}, {"backend": "mysql"})
    with pytest.raises(Exception, match=r"plugins\.ratelimit"):
        async with kernel_client(kernel) as client:
            await client.post(PATH, json=CHAT)

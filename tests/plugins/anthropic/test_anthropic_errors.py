"""Upstream failures become precise RequestErrors naming the anthropic plugin: from the
skill itself, and end to end over HTTP through the kernel's server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anthropic_helpers import call_and_ctx, collect, started

import robutler_plugin_anthropic
from robutler_kernel.testing import FakeAnthropic, LiveServer, closed_port, make_kernel, stalled_port
from robutler_specs import (
    BadRequest,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestError,
    ServiceUnavailable,
)


async def skill_error(fake: FakeAnthropic | None, *, stream: bool = False, **overrides: Any) -> RequestError:
    """The RequestError one call raises (from the hook itself, or while streaming)."""
    async with started(fake, **overrides) as skill:
        with pytest.raises(RequestError) as caught:
            if stream:
                await collect(await skill.llm_stream(*call_and_ctx(stream=True)))
            else:
                await skill.llm_complete(*call_and_ctx())
    error = caught.value
    assert error.plugin == "anthropic"
    return error


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [529, 503])
async def test_overloaded_is_a_retryable_503(fake: FakeAnthropic, status: int, stream: bool) -> None:
    fake.add_error(status, "Overloaded", retry_after=2)
    error = await skill_error(fake, stream=stream)
    assert type(error) is ServiceUnavailable and error.status == 503 and error.retryable
    assert len(fake.requests) == 1  # the SDK's own retries are off: tries never multiply
    assert "Overloaded" in error.message and f"({status})" in error.message and "'claude-x'" in error.message
    assert error.headers == {"Retry-After": "2"}


@pytest.mark.parametrize("stream", [False, True])
async def test_429_is_rate_limited_with_retry_after(fake: FakeAnthropic, stream: bool) -> None:
    fake.add_error(429, "Number of request tokens has exceeded your per-minute rate limit", retry_after=7)
    error = await skill_error(fake, stream=stream)
    assert isinstance(error, RateLimited) and error.status == 429 and error.retryable
    assert error.headers == {"Retry-After": "7"} and error.retry_after == 7
    assert "per-minute rate limit" in error.message


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_credentials_say_to_check_the_api_key(fake: FakeAnthropic, status: int) -> None:
    fake.add_error(status, "invalid x-api-key")
    error = await skill_error(fake)
    assert type(error) is ProviderError and error.status == 502 and not error.retryable
    assert error.code == "provider_auth_failed" and "invalid x-api-key" in error.message
    assert "anthropic" in error.message and "api_key (or ANTHROPIC_API_KEY)" in error.message


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_request_errors_are_bad_requests_with_the_upstreams_message(fake: FakeAnthropic, status: int) -> None:
    fake.add_error(status, "model: claude-nope does not exist")
    error = await skill_error(fake)
    assert type(error) is BadRequest and error.status == 400 and not error.retryable
    assert error.message == "anthropic plugin: model: claude-nope does not exist"


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_other_5xx_are_retryable_provider_errors(fake: FakeAnthropic, status: int) -> None:
    fake.add_error(status, "Internal server error")
    error = await skill_error(fake)
    assert type(error) is ProviderError and error.status == 502 and error.retryable
    assert "Internal server error" in error.message and f"({status})" in error.message


async def test_a_real_conversation_error_from_the_api_is_a_bad_request(fake: FakeAnthropic) -> None:
    async with started(fake, default_params={"top_k": 5}) as skill:  # refused by API 2026-10-21
        with pytest.raises(BadRequest, match="top_k: Extra inputs are not permitted"):
            await skill.llm_complete(*call_and_ctx())


async def test_a_timeout_is_504_naming_the_plugin_and_model(fake: FakeAnthropic) -> None:
    fake.add_reply("too late", delay=3)
    error = await skill_error(fake, timeout=0.3)
    assert isinstance(error, ProviderTimeout) and error.status == 504
    assert "anthropic" in error.message and "'claude-x'" in error.message and "0.3s" in error.message


async def test_a_stream_that_stalls_times_out(fake: FakeAnthropic) -> None:
    fake.add_reply("a b c d", hang_after=4)
    error = await skill_error(fake, stream=True, timeout=0.3)
    assert isinstance(error, ProviderTimeout) and error.status == 504


async def test_connection_refused_names_the_base_url() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    error = await skill_error(None, base_url=base_url)
    assert type(error) is ProviderError and error.status == 502 and error.code == "provider_unreachable"
    assert base_url in error.message and "base_url" in error.message


@pytest.mark.parametrize("stream", [False, True])
async def test_a_connection_that_never_completes_is_a_504_naming_connect_timeout(stream: bool) -> None:
    with stalled_port() as port:
        base_url = f"http://127.0.0.1:{port}"
        error = await skill_error(None, stream=stream, base_url=base_url, connect_timeout=0.2, timeout=30)
    assert type(error) is ProviderTimeout and error.status == 504 and error.retryable
    assert f"could not connect to {base_url} within 0.2s" in error.message


async def test_a_mid_stream_error_event(fake: FakeAnthropic) -> None:
    fake.add_stream_error(after=5, message="Overloaded")
    error = await skill_error(fake, stream=True)
    assert type(error) is ServiceUnavailable and "mid-stream (overloaded_error)" in error.message
    fake.add_stream_error(after=5, message="Something broke", type="api_error")
    assert type(await skill_error(fake, stream=True)) is ProviderError


# -- over HTTP, through the kernel ------------------------------------------------------


def serve(skill: dict[str, Any]) -> LiveServer:
    """A kernel with one agent on anthropic/claude-x, no retries, served over a real socket."""
    agents = {"bot": {"model": "anthropic/claude-x", "retry": {"attempts": 1},
                      "skills": {"anthropic": {"api_key": "test-key", "timeout": 2, **skill}}}}
    return LiveServer(make_kernel(agents, plugins=[robutler_plugin_anthropic]))


@pytest.fixture(scope="module")
def http_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key="test-key") as fake:
        yield fake


@pytest.fixture(scope="module")
def server(http_fake: FakeAnthropic) -> Iterator[str]:
    with serve({"base_url": http_fake.base_url, "timeout": 0.5}) as live:
        yield live.url


@pytest.fixture
def upstream(http_fake: FakeAnthropic) -> FakeAnthropic:
    http_fake.reset()
    return http_fake


def post(url: str, *, stream: bool = False) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return httpx.post(f"{url}/bot/chat/completions", json=body, timeout=10)


@pytest.mark.parametrize("stream", [False, True])
def test_http_overloaded_is_503(server: str, upstream: FakeAnthropic, stream: bool) -> None:
    upstream.add_error(529, "Overloaded")
    response = post(server, stream=stream)
    assert response.status_code == 503
    assert "anthropic plugin" in response.json()["error"]["message"] and "Overloaded" in response.text
    assert len(upstream.requests) == 1  # retries are off for this agent


def test_http_rate_limit_is_429_with_retry_after(server: str, upstream: FakeAnthropic) -> None:
    upstream.add_error(429, "rate limited", retry_after=30)
    response = post(server)
    assert response.status_code == 429 and response.headers["retry-after"] == "30"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_http_kernel_timeout_is_504_naming_anthropic(server: str, upstream: FakeAnthropic) -> None:
    upstream.add_reply("too late", delay=3)
    response = post(server)
    assert response.status_code == 504 and "anthropic" in response.json()["error"]["message"]


def test_http_a_stream_after_its_first_token_ends_with_an_error_event(server: str, upstream: FakeAnthropic) -> None:
    upstream.add_stream_error(after=4, message="Overloaded now")
    response = post(server, stream=True)
    assert response.status_code == 200  # the first token was already sent
    assert '"content":"hi"' in response.text and "Overloaded now" in response.text
    assert response.text.rstrip().endswith("data: [DONE]")


def test_http_a_bad_key_is_502_naming_the_plugin_and_the_key(http_fake: FakeAnthropic) -> None:
    with serve({"base_url": http_fake.base_url, "api_key": "sk-ant-wrong"}) as live:
        response = post(live.url)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "provider_auth_failed" and "invalid x-api-key" in error["message"]
    assert "anthropic" in error["message"] and "ANTHROPIC_API_KEY" in error["message"]


def test_http_connection_refused_is_502_naming_the_base_url() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    with serve({"base_url": base_url}) as live:
        response = post(live.url)
    assert response.status_code == 502
    assert base_url in response.json()["error"]["message"]

"""Upstream failures become precise RequestErrors naming the openai plugin."""

from __future__ import annotations

from typing import Any

import pytest
from openai_helpers import call_and_ctx, collect, run, started

from robutler_kernel.testing import FakeOpenAI, closed_port, stalled_port
from robutler_specs import (
    BadRequest,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestError,
    ServiceUnavailable,
)


def complete_error(fake: FakeOpenAI | None, *, stream: bool = False, **overrides: Any) -> RequestError:
    """The RequestError one call raises."""
    async def body() -> RequestError:
        async with started(fake, **overrides) as skill:
            with pytest.raises(RequestError) as caught:
                if stream:
                    await collect(await skill.llm_stream(*call_and_ctx(stream=True)))
                else:
                    await skill.llm_complete(*call_and_ctx())
            return caught.value
    return run(body())


@pytest.mark.parametrize("stream", [False, True])
def test_429_is_rate_limited_with_retry_after(fake: FakeOpenAI, stream: bool) -> None:
    fake.add_error(429, "Rate limit reached for gpt-x", type="requests", code="rate_limit_exceeded", retry_after=7)
    error = complete_error(fake, stream=stream)
    assert isinstance(error, RateLimited) and error.status == 429
    assert error.headers == {"Retry-After": "7"}
    assert "Rate limit reached for gpt-x" in error.message and error.plugin == "openai"


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_is_a_provider_error_with_the_providers_message(fake: FakeOpenAI, status: int) -> None:
    fake.add_error(status, "the model is on a coffee break")
    error = complete_error(fake)
    assert type(error) is ProviderError and error.status == 502
    assert "the model is on a coffee break" in error.message and f"({status})" in error.message
    assert error.plugin == "openai"


@pytest.mark.parametrize("status", [503, 529])
def test_overloaded_is_service_unavailable(fake: FakeOpenAI, status: int) -> None:
    fake.add_error(status, "overloaded", retry_after=2)
    error = complete_error(fake)
    assert isinstance(error, ServiceUnavailable) and error.status == 503
    assert "overloaded" in error.message and error.headers == {"Retry-After": "2"}


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_say_to_check_the_api_key(fake: FakeOpenAI, status: int) -> None:
    fake.add_error(status, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key")
    error = complete_error(fake)
    assert type(error) is ProviderError and error.status == 502
    assert "openai" in error.message and "api_key" in error.message
    assert "Incorrect API key provided" in error.message


def test_400_is_a_bad_request_with_the_providers_message(fake: FakeOpenAI) -> None:
    fake.add_error(400, "max_tokens is too large", type="invalid_request_error", param="max_tokens")
    error = complete_error(fake)
    assert isinstance(error, BadRequest) and error.status == 400
    assert "max_tokens is too large" in error.message and error.param == "max_tokens"


def test_timeout_is_504_naming_the_plugin_and_model(fake: FakeOpenAI) -> None:
    fake.add_reply("too late", delay=3)
    error = complete_error(fake, timeout=0.3)
    assert isinstance(error, ProviderTimeout) and error.status == 504
    assert "openai" in error.message and "'gpt-x'" in error.message and "0.3s" in error.message


def test_a_stream_that_stalls_times_out(fake: FakeOpenAI) -> None:
    fake.add_reply("a b c d", hang_after=2)
    error = complete_error(fake, stream=True, timeout=0.3)
    assert isinstance(error, ProviderTimeout) and error.status == 504


def test_connection_refused_names_the_base_url() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    error = complete_error(None, base_url=base_url)
    assert type(error) is ProviderError and error.status == 502
    assert base_url in error.message and error.plugin == "openai"


@pytest.mark.parametrize("stream", [False, True])
def test_a_connection_that_never_completes_is_a_504_naming_connect_timeout(stream: bool) -> None:
    with stalled_port() as port:
        base_url = f"http://127.0.0.1:{port}/v1"
        error = complete_error(None, stream=stream, base_url=base_url, connect_timeout=0.2, timeout=30)
    assert type(error) is ProviderTimeout and error.status == 504 and error.retryable
    assert f"could not connect to {base_url} within 0.2s" in error.message
    assert "connect_timeout" in error.message and error.plugin == "openai"


def test_tries_once_and_leaves_retries_to_the_kernel(fake: FakeOpenAI) -> None:
    fake.add_error(500, "flaky", times=2)
    error = complete_error(fake)
    assert type(error) is ProviderError and error.retryable
    assert len(fake.requests) == 1  # the SDK's own retries are off: tries never multiply


@pytest.mark.parametrize(("status", "retryable"), [(401, False), (404, False), (400, False), (408, True),
                                                   (429, True), (500, True), (503, True), (529, True)])
def test_marks_which_failures_another_try_may_fix(fake: FakeOpenAI, status: int, retryable: bool) -> None:
    fake.add_error(status, "injected")
    assert complete_error(fake).retryable is retryable

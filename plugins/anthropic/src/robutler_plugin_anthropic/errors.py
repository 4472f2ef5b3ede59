"""Translate the anthropic SDK's exceptions (and Anthropic's error events) into Robutler's
``RequestError`` subclasses.

Every error names the plugin (``plugin="anthropic"``) and says what the operator can do;
the mapping and wording shared by all provider plugins is
:mod:`robutler_specs.provider_errors`. Anthropic's own statuses: 529 (overloaded) is a
503; 404 (an unknown model) and 413 (a request too large) are the caller's 400.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from robutler_specs import ProviderError, RequestError, ServiceUnavailable
from robutler_specs.provider_errors import (
    broken_error,
    connection_refused,
    disconnected,
    status_error,
    timeout_error,
    unreachable_error,
)

PLUGIN = "anthropic"

#: Statuses that mean the request itself is wrong (the caller's 400).
BAD_REQUEST = (400, 404, 413, 422)


def provider_message(exc: anthropic.APIStatusError) -> str:
    """The upstream's own message (``error.message`` of Anthropic's body), else the SDK's."""
    if exc.api_message:
        return exc.api_message
    body: Any = exc.body
    if isinstance(body, str) and body:
        return body[:500]
    return exc.message


def map_status(status: int, message: str, *, retry_after: str | None, model: str,
               base_url: str) -> RequestError:
    """The ``RequestError`` for an upstream answer with an error ``status``."""
    return status_error(status, message, plugin=PLUGIN, model=model, base_url=base_url,
                        key_setting="api_key (or ANTHROPIC_API_KEY)", retry_after=retry_after,
                        bad_request=BAD_REQUEST)


def map_error(
    exc: Exception, *, model: str, base_url: str, timeout: float, connect_timeout: float | None = None
) -> RequestError:
    """The ``RequestError`` to raise for an exception from the SDK (or its HTTP client).

    :param exc: what the SDK raised.
    :param model: the upstream model name, for messages.
    :param base_url: the configured base URL, for messages.
    :param timeout: the configured timeout, for messages.
    :param connect_timeout: the configured connect timeout, for messages.
    """
    # The SDK's own errors cover sending the request; reading a stream's body raises the
    # HTTP library's (TimeoutException, TransportError) directly.
    if disconnected(exc):  # before the timeout: the SDKs' aiohttp transport calls it one
        return broken_error(exc, plugin=PLUGIN, model=model, base_url=base_url)
    if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)) and not connection_refused(exc):
        return timeout_error(exc, plugin=PLUGIN, model=model, base_url=base_url, timeout=timeout,
                             connect_timeout=connect_timeout)
    if isinstance(exc, anthropic.APIConnectionError) or connection_refused(exc):
        return unreachable_error(exc, plugin=PLUGIN, base_url=base_url)
    if isinstance(exc, httpx2.TransportError):
        return broken_error(exc, plugin=PLUGIN, model=model, base_url=base_url)
    if isinstance(exc, anthropic.APIStatusError):
        return map_status(exc.status_code, provider_message(exc),
                          retry_after=exc.response.headers.get("retry-after"),
                          model=model, base_url=base_url)
    return ProviderError(
        f"anthropic plugin: {model!r} at {base_url} failed: {type(exc).__name__}: {exc}", plugin=PLUGIN
    )


def event_error(kind: str, message: str, *, model: str) -> RequestError:
    """The ``RequestError`` for an ``error`` event in the middle of a stream:
    ``overloaded_error`` is a 503, anything else a 502 (both retryable while no token
    reached the client)."""
    text = f"anthropic plugin: {model!r} failed mid-stream ({kind}): {message}"
    if kind == "overloaded_error":
        return ServiceUnavailable(text, plugin=PLUGIN)
    return ProviderError(text, plugin=PLUGIN)


__all__ = ["BAD_REQUEST", "PLUGIN", "event_error", "map_error", "map_status", "provider_message"]

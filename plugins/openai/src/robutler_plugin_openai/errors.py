"""Translate the openai SDK's exceptions into Robutler's ``RequestError`` subclasses.

Every error names the plugin (``plugin="openai"``) and says what the operator can do; the
mapping and wording shared by all provider plugins is :mod:`robutler_specs.provider_errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robutler_specs import ProviderError, RequestError
from robutler_specs.provider_errors import (
    broken_error,
    connection_refused,
    disconnected,
    status_error,
    timeout_error,
    unreachable_error,
)

if TYPE_CHECKING:
    import openai

PLUGIN = "openai"


def sdk_error() -> type[Exception]:
    """The SDK's base exception, imported when an SDK call failed: the SDK is imported only
    by the ``sdk`` transport and embeddings, not by a server on the default transport."""
    import openai

    return openai.OpenAIError


def provider_message(exc: openai.APIStatusError) -> str:
    """The upstream's own error message (from its OpenAI-shaped body), else the SDK's."""
    body: Any = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return exc.message


def map_status(
    status: int, message: str, *, param: str | None, retry_after: str | None, model: str, base_url: str
) -> RequestError:
    """The ``RequestError`` for an upstream answer with an error ``status``."""
    return status_error(status, message, plugin=PLUGIN, model=model, base_url=base_url,
                        key_setting="api_key (or OPENAI_API_KEY)", param=param,
                        retry_after=retry_after)


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
    import openai

    from .transport import TimeoutException, TransportError

    # The SDK's own errors cover sending the request; reading a stream's body raises the
    # HTTP library's (TimeoutException, TransportError) directly.
    if disconnected(exc):  # before the timeout: the SDKs' aiohttp transport calls it one
        return broken_error(exc, plugin=PLUGIN, model=model, base_url=base_url)
    if isinstance(exc, (openai.APITimeoutError, TimeoutException)) and not connection_refused(exc):
        return timeout_error(exc, plugin=PLUGIN, model=model, base_url=base_url, timeout=timeout,
                             connect_timeout=connect_timeout)
    if isinstance(exc, openai.APIConnectionError) or connection_refused(exc):
        return unreachable_error(exc, plugin=PLUGIN, base_url=base_url)
    if isinstance(exc, TransportError):
        return broken_error(exc, plugin=PLUGIN, model=model, base_url=base_url)
    if isinstance(exc, openai.APIStatusError):
        param = exc.param if isinstance(exc.param, str) else None
        return map_status(exc.status_code, provider_message(exc), param=param,
                          retry_after=exc.response.headers.get("retry-after"),
                          model=model, base_url=base_url)
    return ProviderError(
        f"openai plugin: {model!r} at {base_url} failed: {type(exc).__name__}: {exc}", plugin=PLUGIN
    )


__all__ = ["PLUGIN", "map_error", "map_status", "provider_message", "sdk_error"]

"""Translate the openai SDK's exceptions into Robutler's ``RequestError`` subclasses.

Every error names the plugin (``plugin="openai"``) and says what the operator can do.
"""

from __future__ import annotations

from typing import Any

import openai

from robutler_specs import (
    BadRequest,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestError,
    ServiceUnavailable,
)

from .transport import TimeoutException, TransportError

PLUGIN = "openai"


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
    where = f"{model!r} at {base_url}"
    headers = {"Retry-After": retry_after} if retry_after else {}
    if status == 429:
        return RateLimited(f"openai plugin: {message}", headers=headers, plugin=PLUGIN)
    if status in (401, 403):
        return ProviderError(
            f"openai plugin: the upstream at {base_url} refused the credentials "
            f"({status}: {message}); check the openai skill's api_key (or OPENAI_API_KEY)",
            code="provider_auth_failed",
            plugin=PLUGIN,
            retryable=False,
        )
    if status in (400, 422):
        return BadRequest(f"openai plugin: {message}", param=param, plugin=PLUGIN)
    if status in (503, 529):
        return ServiceUnavailable(
            f"openai plugin: {where} is overloaded or unavailable ({status}): {message}",
            headers=headers,
            plugin=PLUGIN,
        )
    # 5xx and 408 may pass on another try; any other 4xx would fail the same way again.
    return ProviderError(f"openai plugin: {where} failed ({status}): {message}", plugin=PLUGIN,
                         retryable=status >= 500 or status == 408)


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _refused(exc: BaseException) -> bool:
    """Whether the connection could not be made at all. The SDK's aiohttp transport
    reports a refused connection as a connect *timeout*; the root cause tells them apart."""
    root = _root(exc)
    return isinstance(root, ConnectionRefusedError) or type(root).__name__ == "ClientConnectorError"


def map_error(exc: Exception, *, model: str, base_url: str, timeout: float) -> RequestError:
    """The ``RequestError`` to raise for an exception from the SDK (or its HTTP client).

    :param exc: what the SDK raised.
    :param model: the upstream model name, for messages.
    :param base_url: the configured base URL, for messages.
    :param timeout: the configured timeout, for messages.
    """
    where = f"{model!r} at {base_url}"
    # The SDK's own errors cover sending the request; reading a stream's body raises the
    # HTTP library's (TimeoutException, TransportError) directly.
    if isinstance(exc, (openai.APITimeoutError, TimeoutException)) and not _refused(exc):
        return ProviderTimeout(
            f"openai plugin: {where} did not answer within {timeout:g}s "
            "(raise the openai skill's timeout if the model is slow)",
            plugin=PLUGIN,
        )
    if isinstance(exc, openai.APIConnectionError) or _refused(exc):
        cause = _root(exc)
        return ProviderError(
            f"openai plugin: cannot reach {base_url} ({type(cause).__name__}: {cause}); "
            "check the openai skill's base_url and that the server is running",
            code="provider_unreachable",
            plugin=PLUGIN,
        )
    if isinstance(exc, TransportError):
        return ProviderError(
            f"openai plugin: the connection to {base_url} broke while {model!r} was answering "
            f"({type(exc).__name__}: {exc})",
            code="provider_unreachable",
            plugin=PLUGIN,
        )
    if isinstance(exc, openai.APIStatusError):
        param = exc.param if isinstance(exc.param, str) else None
        return map_status(exc.status_code, provider_message(exc), param=param,
                          retry_after=exc.response.headers.get("retry-after"),
                          model=model, base_url=base_url)
    return ProviderError(
        f"openai plugin: {where} failed: {type(exc).__name__}: {exc}", plugin=PLUGIN
    )


__all__ = ["PLUGIN", "map_error", "map_status", "provider_message"]

"""What every LLM provider plugin does with an upstream failure: the same ``RequestError``
for the same kind of failure, worded the same way (which plugin, which model at which
``base_url``, and what the operator can do).

A provider plugin maps its SDK's exceptions onto these helpers; the kernel then retries
what is ``retryable`` (see :mod:`robutler_specs.errors`).
"""

from __future__ import annotations

from collections.abc import Collection

from .errors import (
    BadRequest,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestError,
    ServiceUnavailable,
)


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of ``exc``'s ``__cause__`` chain."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def connection_refused(exc: BaseException) -> bool:
    """Whether the connection could not be made at all. The SDKs' aiohttp transport
    reports a refused connection as a connect *timeout*; the root cause tells them apart."""
    root = root_cause(exc)
    return isinstance(root, ConnectionRefusedError) or type(root).__name__ == "ClientConnectorError"


def status_error(
    status: int,
    message: str,
    *,
    plugin: str,
    model: str,
    base_url: str,
    key_setting: str,
    param: str | None = None,
    retry_after: str | None = None,
    bad_request: Collection[int] = (400, 422),
) -> RequestError:
    """The ``RequestError`` for an upstream answer with an error ``status``.

    429 is ``RateLimited`` (``Retry-After`` passed on); 401/403 a ``ProviderError`` that
    is not retried and names ``key_setting``; the ``bad_request`` statuses a ``BadRequest``
    with the upstream's message; 503/529 ``ServiceUnavailable``; any other 5xx (and 408)
    a retryable ``ProviderError``, other 4xx one that is not.

    :param status: the upstream's HTTP status.
    :param message: the upstream's own error message.
    :param plugin: the plugin's name (``"openai"``), on the error and in the message.
    :param model: the upstream model name, for messages.
    :param base_url: the configured base URL, for messages.
    :param key_setting: where the key is set, e.g. ``"api_key (or OPENAI_API_KEY)"``.
    :param param: the request field at fault, if the upstream named one.
    :param retry_after: the upstream's ``Retry-After`` header, if any.
    :param bad_request: the statuses that mean the request itself is wrong.
    """
    where = f"{model!r} at {base_url}"
    headers = {"Retry-After": retry_after} if retry_after else {}
    if status == 429:
        return RateLimited(f"{plugin} plugin: {message}", headers=headers, plugin=plugin)
    if status in (401, 403):
        return ProviderError(
            f"{plugin} plugin: the upstream at {base_url} refused the credentials "
            f"({status}: {message}); check the {plugin} skill's {key_setting}",
            code="provider_auth_failed",
            plugin=plugin,
            retryable=False,
        )
    if status in bad_request:
        return BadRequest(f"{plugin} plugin: {message}", param=param, plugin=plugin)
    if status in (503, 529):
        return ServiceUnavailable(
            f"{plugin} plugin: {where} is overloaded or unavailable ({status}): {message}",
            headers=headers,
            plugin=plugin,
        )
    # 5xx and 408 may pass on another try; any other 4xx would fail the same way again.
    return ProviderError(f"{plugin} plugin: {where} failed ({status}): {message}", plugin=plugin,
                         retryable=status >= 500 or status == 408)


#: What the HTTP libraries under the SDKs call a timeout while connecting (httpx, aiohttp).
_CONNECT_TIMEOUTS = ("ConnectTimeout", "ConnectionTimeoutError")

#: What they raise when a connection that was made is closed or reset by the peer.
_DISCONNECTS = ("ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
                "ConnectionResetError", "BrokenPipeError", "RemoteProtocolError")


def disconnected(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a connection the peer closed or reset. The
    SDKs' aiohttp transport reports an upstream that accepts a connection and then drops it
    as a connect *timeout*; what caused it tells the two apart (it is a 502, not a 504)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if type(seen).__name__ in _DISCONNECTS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def connect_timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a timeout while opening the connection."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if type(seen).__name__ in _CONNECT_TIMEOUTS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def timeout_error(
    exc: BaseException | None = None,
    *,
    plugin: str,
    model: str,
    base_url: str,
    timeout: float,
    connect_timeout: float | None = None,
) -> ProviderTimeout:
    """``model`` did not answer within ``timeout`` seconds, or (when ``exc`` says so) no
    connection to ``base_url`` was made within ``connect_timeout`` (504, retryable)."""
    if exc is not None and connect_timeout is not None and connect_timed_out(exc):
        return ProviderTimeout(
            f"{plugin} plugin: could not connect to {base_url} within {connect_timeout:g}s "
            f"(the {plugin} skill's connect_timeout); check base_url and that the server is up",
            plugin=plugin,
        )
    return ProviderTimeout(
        f"{plugin} plugin: {model!r} at {base_url} did not answer within {timeout:g}s "
        f"(raise the {plugin} skill's timeout if the model is slow)",
        plugin=plugin,
    )


def unreachable_error(exc: BaseException, *, plugin: str, base_url: str) -> ProviderError:
    """No connection could be made to ``base_url`` (502, retryable)."""
    cause = root_cause(exc)
    return ProviderError(
        f"{plugin} plugin: cannot reach {base_url} ({type(cause).__name__}: {cause}); "
        f"check the {plugin} skill's base_url and that the server is running",
        code="provider_unreachable",
        plugin=plugin,
    )


def broken_error(exc: BaseException, *, plugin: str, model: str, base_url: str) -> ProviderError:
    """The connection broke while ``model`` was answering, or was closed before it answered
    (502, retryable). Names the innermost cause (``ServerDisconnectedError``...)."""
    cause = root_cause(exc)
    return ProviderError(
        f"{plugin} plugin: the connection to {base_url} broke while {model!r} was answering "
        f"({type(cause).__name__}: {cause})",
        code="provider_unreachable",
        plugin=plugin,
    )


def incomplete_error(*, plugin: str, model: str, base_url: str, missing: str) -> ProviderError:
    """A stream of ``model`` that ended without its end (``missing``: "a finish reason or
    [DONE]", "message_stop"): the connection was closed early or the upstream broke off,
    and the answer is not whole (502 ``provider_incomplete``, retryable while none of it
    reached the client)."""
    return ProviderError(
        f"{plugin} plugin: the stream of {model!r} at {base_url} ended without {missing}: "
        "the upstream broke off, the answer is incomplete",
        code="provider_incomplete",
        plugin=plugin,
    )


__all__ = [
    "broken_error",
    "connect_timed_out",
    "connection_refused",
    "disconnected",
    "incomplete_error",
    "root_cause",
    "status_error",
    "timeout_error",
    "unreachable_error",
]

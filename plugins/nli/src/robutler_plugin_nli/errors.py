"""What can go wrong calling another agent, each as the ``RequestError`` that says it.

A handoff hook raises them as they are (the kernel makes a failed handoff a tool result
the model reads, or an error once the client has seen part of the answer); ``ask_agent``
turns them into a ``ToolError`` with the same message. Every message names the agent or
URL and, where there is one, the setting that changes the outcome.
"""

from __future__ import annotations

import msgspec

from robutler_specs import (
    BadRequest,
    Forbidden,
    NotFound,
    PaymentRequired,
    ProviderError,
    ProviderTimeout,
    RequestError,
)

PLUGIN = "nli"


def refused(message: str) -> Forbidden:
    """The SSRF guard refused the URL (403)."""
    return Forbidden(message, code="agent_url_refused", plugin=PLUGIN)


def over_budget(message: str) -> PaymentRequired:
    """Not enough is left of the request's budget to make the call (402)."""
    return PaymentRequired(message, code="agent_budget_exhausted", plugin=PLUGIN)


def unknown(agent: str) -> NotFound:
    """No local agent, peer or URL by that name (404)."""
    return NotFound(
        f"no agent named {agent!r}: not an agent of this server, not a peer in skills.nli.peers, and not "
        "a URL (http://... or https://...)",
        code="agent_not_found",
        plugin=PLUGIN,
    )


def failed(message: str, code: str) -> ProviderError:
    """The call could not be completed: connection, redirect, size, shape (502)."""
    return ProviderError(message, code=code, plugin=PLUGIN, retryable=False)


def too_slow(where: str, seconds: float) -> ProviderTimeout:
    """The callee did not answer within the call's timeout (504)."""
    return ProviderTimeout(
        f"{where} did not answer within {seconds:g} s; raise skills.nli.timeout if it is slow",
        code="agent_timeout",
        plugin=PLUGIN,
        retryable=False,
    )


class _ErrorDetail(msgspec.Struct):
    message: str = ""
    code: str | int | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | str | None = None


def error_message(body: bytes) -> tuple[str | None, str | None]:
    """The message and code of an OpenAI-shaped error body (``None`` when it is not one)."""
    try:
        decoded = msgspec.json.decode(body, type=_ErrorBody)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, None
    if isinstance(decoded.error, str):
        return decoded.error or None, None
    if decoded.error is None:
        return None, None
    code = decoded.error.code
    return decoded.error.message or None, None if code is None else str(code)


def answered(where: str, status: int, body: bytes) -> RequestError:
    """The callee answered ``status`` (an error): its own message, under the status's error."""
    message, code = error_message(body)
    if message is None:
        text = body[:200].decode("utf-8", "replace").strip()
        message = text or "no message"
    said = f"{where} answered {status}: {message}"
    code = code or "agent_error"
    if status == 402:
        return PaymentRequired(said, code=code, plugin=PLUGIN)
    if status in (400, 409, 422):
        return BadRequest(said, code=code, plugin=PLUGIN)
    return failed(said, code)


__all__ = ["PLUGIN", "answered", "error_message", "failed", "over_budget", "refused", "too_slow", "unknown"]

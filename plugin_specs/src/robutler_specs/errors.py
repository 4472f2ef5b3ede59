"""Errors a hook or tool raises to stop a request with a precise HTTP answer.

The kernel renders every :class:`RequestError` as an OpenAI-shaped body::

    {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}

with the error's ``status``. Any other exception escaping a hook becomes a 500
``internal_error`` whose message names the plugin and hook, never a traceback.
"""

from __future__ import annotations

from typing import ClassVar


class RequestError(Exception):
    """Stop the request and answer with ``status`` and an OpenAI-shaped error body.

    :param message: what went wrong and what the caller can do about it.
    :param status: the HTTP status; defaults to the subclass's.
    :param code: a stable machine-readable code (``"invalid_api_key"``).
    :param param: the request field at fault, if any (``"messages[0].content"``).
    :param headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    :param plugin: the plugin that raised it; the kernel fills it in when empty.
    :param retryable: whether the kernel may retry the LLM call that raised it (or fall
        through to the next model of a fallback list); defaults to the subclass's. A
        provider plugin passes ``retryable=False`` for an upstream error that another try
        cannot fix (bad credentials).
    """

    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    default_code: ClassVar[str] = "invalid_request"
    retryable_default: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        plugin: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status  # type: ignore[misc]
        self.code = code or self.default_code
        self.param = param
        self.headers = dict(headers or {})
        self.plugin = plugin
        self.retryable = self.retryable_default if retryable is None else retryable

    @property
    def retry_after(self) -> float | None:
        """Seconds from the ``Retry-After`` header, when it holds a number of seconds."""
        value = self.headers.get("Retry-After")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if seconds >= 0 else None

    def to_body(self) -> dict[str, dict[str, object]]:
        """The OpenAI-shaped error body for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequest(RequestError):
    """400: the request is malformed or names something that does not exist."""


class ContentBlocked(RequestError):
    """400: a policy (guardrail) refused the content."""

    default_code = "content_blocked"


class Unauthorized(RequestError):
    """401: credentials are missing or invalid."""

    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PaymentRequired(RequestError):
    """402: the caller cannot pay for this request."""

    status = 402
    type = "insufficient_quota"
    default_code = "insufficient_credits"


class Forbidden(RequestError):
    """403: the caller is known but not allowed to do this."""

    status = 403
    type = "permission_error"
    default_code = "forbidden"


class NotFound(RequestError):
    """404: no such agent, model or route."""

    status = 404
    type = "not_found_error"
    default_code = "not_found"


class PayloadTooLarge(RequestError):
    """413: the request body is over the configured limit."""

    status = 413
    default_code = "request_too_large"


class RateLimited(RequestError):
    """429: too many requests; ``headers`` may carry ``Retry-After``."""

    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable_default = True


class ProviderError(RequestError):
    """502: the upstream LLM provider failed; the message carries the provider's own."""

    status = 502
    type = "api_error"
    default_code = "provider_error"
    retryable_default = True


class ServiceUnavailable(RequestError):
    """503: a backend (provider, database, cache) is down or overloaded."""

    status = 503
    type = "api_error"
    default_code = "service_unavailable"
    retryable_default = True


class ProviderTimeout(RequestError):
    """504: the upstream provider did not answer in time."""

    status = 504
    type = "api_error"
    default_code = "provider_timeout"
    retryable_default = True


class ToolError(Exception):
    """A tool's expected refusal ("this request names no user", "value too long"): the
    model sees ``Error: <message>`` and can tell the person; the kernel logs it without a
    traceback. Any other exception from a tool is reported the same way but logged as a
    failure."""


class AgentConfigError(RequestError):
    """An agent exists but its configuration is broken (a file of ``agents_dir``, a row of
    a plugin's agent store): a 500 ``agent_config_error`` whose message says where (the
    file and line, or the table) and what, for that agent alone."""

    status = 500
    type = "server_error"
    default_code = "agent_config_error"


class ConfigError(Exception):
    """A configuration problem found at start-up; the message names file, line and key."""


class PluginError(Exception):
    """A plugin could not be loaded or resolved; the message names the plugin and what to do."""


__all__ = [
    "AgentConfigError",
    "BadRequest",
    "ConfigError",
    "ContentBlocked",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "PaymentRequired",
    "PluginError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RequestError",
    "ServiceUnavailable",
    "ToolError",
    "Unauthorized",
]

"""The ``openai`` skill's configuration (``skills: {openai: {...}}`` in the YAML)."""

from __future__ import annotations

import os
from typing import Any, Literal

import msgspec

#: The default upstream: OpenAI itself.
OPENAI_BASE_URL = "https://api.openai.com/v1"

#: Sent when no key is configured, so that a local server that checks nothing still works
#: (the SDK itself refuses to build a client without a key).
PLACEHOLDER_API_KEY = "sk-no-key-configured"

#: Used by ``robutler_embed`` when neither the call nor the config names a model.
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"


def _env_api_key() -> str:
    return os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_API_KEY


def _env_base_url() -> str:
    return os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL


class OpenAIConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Configuration of :class:`~robutler_plugin_openai.OpenAISkill`.

    Defaults are read from the environment when the config is built (not at import).

    :ivar api_key: the API key; default ``$OPENAI_API_KEY``, else a placeholder (for
        local servers that need none).
    :ivar base_url: the API root, ending in ``/v1`` for most servers; default
        ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
    :ivar organization: the ``OpenAI-Organization`` header, if any.
    :ivar timeout: seconds the upstream may stay silent (before its first byte, and
        between two reads of a stream); not a cap on a long stream's total time.
    :ivar connect_timeout: seconds to wait for a connection.
    :ivar max_retries: retries of connection errors, 408, 409, 429 and 5xx (with backoff,
        honouring ``Retry-After``) before an error is reported.
    :ivar default_params: parameters sent with every call (``temperature``...); the
        request's own parameters win.
    :ivar embedding_model: the model ``robutler_embed`` uses when none is asked for.
    :ivar http_client: the HTTP library under the SDK: ``aiohttp`` (the SDK's
        ``DefaultAioHttpClient``; about a third less CPU per call, see docs) or ``httpx``
        (the SDK's own default).
    :ivar transport: ``sdk`` (chat calls through ``AsyncOpenAI``) or ``direct`` (chat
        calls straight over aiohttp, same headers, timeouts, retries and errors, about
        0.5 ms less CPU per call); embeddings always use the SDK.
    """

    api_key: str = msgspec.field(default_factory=_env_api_key)
    base_url: str = msgspec.field(default_factory=_env_base_url)
    organization: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 2
    default_params: dict[str, Any] = {}
    embedding_model: str | None = None
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    transport: Literal["sdk", "direct"] = "sdk"

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive numbers of seconds")
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")


__all__ = ["DEFAULT_EMBEDDING_MODEL", "OPENAI_BASE_URL", "PLACEHOLDER_API_KEY", "OpenAIConfig"]

"""The ``openai`` skill's configuration (``skills: {openai: {...}}`` in the YAML)."""

from __future__ import annotations

import os
from typing import Literal

import msgspec

from robutler_specs import ProviderConfig

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


class OpenAIConfig(ProviderConfig, kw_only=True, forbid_unknown_fields=True):
    """Configuration of :class:`~robutler_plugin_openai.OpenAISkill`.

    Defaults are read from the environment when the config is built (not at import).

    :ivar api_key: the API key; default ``$OPENAI_API_KEY``, else a placeholder (for
        local servers that need none).
    :ivar base_url: the API root, ending in ``/v1`` for most servers; default
        ``$OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
    :ivar organization: the ``OpenAI-Organization`` header, if any.
    :ivar timeout: seconds one call may take in all, a stream up to its last chunk
        (from :class:`~robutler_specs.ProviderConfig`; enforced by the kernel).
    :ivar connect_timeout: seconds to wait for a connection.
    :ivar default_params: parameters sent with every call (``temperature``...); the
        request's own parameters win.

    There is no retry setting here: the kernel retries and falls back (the agent's
    ``retry`` section); the SDK's own retries are off so that tries never multiply.
    :ivar embedding_model: the model ``robutler_embed`` uses when none is asked for.
    :ivar http_client: the HTTP library under the SDK: ``aiohttp`` (the SDK's
        ``DefaultAioHttpClient``; about a third less CPU per call, see docs) or ``httpx``
        (the SDK's own default).
    :ivar transport: ``direct`` (the default: chat calls straight over aiohttp, the same
        headers, timeouts and errors as the SDK's, about 0.5 ms less CPU per call) or
        ``sdk`` (chat calls through ``AsyncOpenAI``); embeddings always use the SDK.
    """

    api_key: str = msgspec.field(default_factory=_env_api_key)
    base_url: str = msgspec.field(default_factory=_env_base_url)
    organization: str | None = None
    embedding_model: str | None = None
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    transport: Literal["sdk", "direct"] = "direct"


__all__ = ["DEFAULT_EMBEDDING_MODEL", "OPENAI_BASE_URL", "PLACEHOLDER_API_KEY", "OpenAIConfig"]

"""The ``anthropic`` skill's configuration (``skills: {anthropic: {...}}`` in the YAML)."""

from __future__ import annotations

import os
from typing import Literal

import msgspec

from robutler_specs import ProviderConfig

#: The default upstream: Anthropic itself (the SDK adds ``/v1/messages``).
ANTHROPIC_BASE_URL = "https://api.anthropic.com"

#: Sent when no key is configured, so that a local server that checks nothing still works
#: (the SDK refuses to build a client without credentials).
PLACEHOLDER_API_KEY = "sk-ant-no-key-configured"

#: ``max_tokens`` of a call whose request sets none (the Messages API requires one).
DEFAULT_MAX_TOKENS = 4096

#: The first API version that refuses ``temperature`` and ``top_p`` (the 2.x SDKs send it).
NO_SAMPLING_VERSION = "2026-10-21"


def _env_api_key() -> str:
    return os.environ.get("ANTHROPIC_API_KEY") or PLACEHOLDER_API_KEY


def _env_base_url() -> str:
    return os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_BASE_URL


class AnthropicConfig(ProviderConfig, kw_only=True, forbid_unknown_fields=True):
    """Configuration of :class:`~robutler_plugin_anthropic.AnthropicSkill`.

    Defaults are read from the environment when the config is built (not at import).

    :ivar api_key: the API key; default ``$ANTHROPIC_API_KEY``, else a placeholder (for
        local servers that need none).
    :ivar base_url: the API root, without ``/v1``; default ``$ANTHROPIC_BASE_URL``, else
        ``https://api.anthropic.com``.
    :ivar max_tokens: the ``max_tokens`` sent when a request sets neither ``max_tokens``
        nor ``max_completion_tokens`` (the Messages API requires it); default 4096.
    :ivar api_version: the ``anthropic-version`` header; default: the SDK's own
        (``2026-10-21`` for the 2.x SDKs). ``temperature`` and ``top_p`` are sent only
        with an older version (``2023-06-01``): from ``2026-10-21`` on the API refuses them.
    :ivar http_client: the HTTP library under the SDK: ``aiohttp`` (the SDK's
        ``DefaultAioHttpClient``, less CPU per call) or ``httpx`` (the SDK's own default).
    :ivar timeout: seconds one call may take in all, a stream up to its last event
        (from :class:`~robutler_specs.ProviderConfig`; enforced by the kernel).
    :ivar connect_timeout: seconds to wait for a connection.
    :ivar default_params: parameters sent with every call; OpenAI names are translated
        like the request's own (which win), any other key is sent to the Messages API as
        it is (``top_k``, ``thinking``, ``service_tier``...).

    There is no retry setting: the kernel retries and falls back (the agent's ``retry``
    section); the SDK's own retries are off so that tries never multiply.
    """

    api_key: str = msgspec.field(default_factory=_env_api_key)
    base_url: str = msgspec.field(default_factory=_env_base_url)
    max_tokens: int = DEFAULT_MAX_TOKENS
    api_version: str | None = None
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be 1 or more")

    @property
    def sends_sampling(self) -> bool:
        """Whether ``temperature`` and ``top_p`` may be sent (an API version before 2026-10-21)."""
        return self.api_version is not None and self.api_version < NO_SAMPLING_VERSION


__all__ = ["ANTHROPIC_BASE_URL", "DEFAULT_MAX_TOKENS", "PLACEHOLDER_API_KEY", "AnthropicConfig"]

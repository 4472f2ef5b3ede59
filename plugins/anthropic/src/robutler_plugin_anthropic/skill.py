"""The ``anthropic`` skill: OpenAI-shaped chat completions and streams from Anthropic's Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

import anthropic
import httpx2

from robutler_specs import (
    AgentSpec,
    ChatCompletionChunk,
    LLMCall,
    LLMResult,
    RequestContext,
    RequestError,
    Skill,
    hookimpl,
)
from robutler_specs.provider import KEEPALIVE_CONNECTIONS, pool_full

from . import health
from .config import AnthropicConfig
from .errors import PLUGIN, map_error
from .stream import MessageStream
from .translate import parse_message, request_body

#: The Messages API endpoint, under ``base_url``.
MESSAGES_PATH = "/v1/messages"


class AnthropicSkill(Skill):
    """Serves ``model: anthropic/<model>`` through the official ``anthropic`` SDK.

    One ``AsyncAnthropic`` client per skill instance (so per agent), opened by
    :meth:`start` (or on first use) and closed by :meth:`stop`. Requests go through the
    SDK's ``post`` (its auth headers, ``anthropic-version``, base URL, timeouts and status
    errors) with a body encoded by msgspec, and answers come back raw to be decoded by
    msgspec (:mod:`.translate`, :mod:`.stream`).
    """

    name: ClassVar[str] = "anthropic"
    provider: ClassVar[str | None] = "anthropic"
    description: ClassVar[str] = "Anthropic (Claude) chat, streaming and tools, in OpenAI's shapes"
    Config: ClassVar[type[AnthropicConfig]] = AnthropicConfig

    config: AnthropicConfig

    def __init__(self, config: AnthropicConfig | None, agent: AgentSpec) -> None:
        super().__init__(config if config is not None else AnthropicConfig(), agent)
        self._client: anthropic.AsyncAnthropic | None = None

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client, created on first use."""
        if self._client is None:
            cfg = self.config
            # The pool is max_connections, not the SDK's hidden 1,000; a call that finds it
            # full waits connect_timeout for a connection, not the whole timeout.
            limits = httpx2.Limits(max_connections=cfg.max_connections,
                                   max_keepalive_connections=min(cfg.max_connections, KEEPALIVE_CONNECTIONS))
            self._client = anthropic.AsyncAnthropic(
                api_key=cfg.api_key,
                base_url=cfg.base_url,
                timeout=httpx2.Timeout(cfg.timeout, connect=cfg.connect_timeout, pool=cfg.connect_timeout),
                max_retries=0,  # the kernel retries (and falls back); tries never multiply
                default_headers={"anthropic-version": cfg.api_version} if cfg.api_version else None,
                # The SDK's aiohttp transport costs less CPU per call than its httpx one.
                http_client=(anthropic.DefaultAioHttpClient(limits=limits) if cfg.http_client == "aiohttp"
                             else anthropic.DefaultAsyncHttpxClient(limits=limits)),
            )
        return self._client

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """The provider's ``GET /models``, cached; informative unless ``health.required``."""
        return health.provider_checks(self)

    async def start(self) -> None:
        """Create the client, so the first request does not pay for it."""
        _ = self.client

    async def stop(self) -> None:
        """Close the client and its connections; the skill may be started again."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _error(self, exc: Exception, call: LLMCall) -> RequestError:
        error = map_error(exc, model=call.model_name, base_url=self.config.base_url,
                          timeout=self.config.timeout, connect_timeout=self.config.connect_timeout)
        return pool_full(exc, error, plugin=PLUGIN, config=self.config, base_url=self.config.base_url)

    async def _post(self, call: LLMCall, *, stream: bool) -> httpx2.Response:
        body = request_body(call, self.config, stream=stream)
        try:
            # A call's extra headers (LLMCall.headers: trace context) ride on the SDK's options.
            options: Any = {"headers": dict(call.headers)} if call.headers else {}
            response: httpx2.Response = await self.client.post(
                MESSAGES_PATH, content=body, cast_to=httpx2.Response, stream=stream, options=options)
        except anthropic.AnthropicError as exc:
            raise self._error(exc, call) from exc
        return response

    @hookimpl
    async def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult | None:
        """Answer ``anthropic/...`` calls with one message; ``None`` for other providers."""
        if call.provider != PLUGIN:
            return None
        response = await self._post(call, stream=False)
        return parse_message(response.content, call.model_name)

    @hookimpl
    async def llm_stream(
        self, ctx: RequestContext, call: LLMCall
    ) -> AsyncIterator[ChatCompletionChunk] | None:
        """Start a streamed message for ``anthropic/...`` calls; ``None`` for other providers.

        The request is sent (and its status checked) before this returns, so upstream
        errors are raised here, before any chunk. Closing the returned iterator closes the
        upstream response, cancelling it.
        """
        if call.provider != PLUGIN:
            return None
        response = await self._post(call, stream=True)
        return MessageStream(response.aiter_bytes(), response.aclose,
                             lambda exc: self._error(exc, call), call.model_name, self.config.base_url)


__all__ = ["MESSAGES_PATH", "AnthropicSkill"]

"""The ``openai`` skill: chat completions and streams from any OpenAI-compatible server."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

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

from . import health, registry
from .config import OpenAIConfig
from .direct import DirectTransport, body_reader, closer
from .errors import PLUGIN, map_error, sdk_error
from .stream import chunk_stream
from .upstream import chat_body, parse_completion, post

if typing.TYPE_CHECKING:
    import openai


class OpenAISkill(Skill):
    """Serves ``model: openai/<model>`` through the official ``openai`` SDK.

    One ``AsyncOpenAI`` client per skill instance (so per agent), opened by :meth:`start`
    (or on first use) and closed by :meth:`stop`. A started instance is also listed in
    :mod:`.registry`, where the module-level ``robutler_embed`` hook finds a client.
    """

    name: ClassVar[str] = "openai"
    provider: ClassVar[str | None] = "openai"
    description: ClassVar[str] = "OpenAI and OpenAI-compatible chat, streaming, tools and embeddings"
    Config: ClassVar[type[OpenAIConfig]] = OpenAIConfig

    config: OpenAIConfig

    def __init__(self, config: OpenAIConfig | None, agent: AgentSpec) -> None:
        super().__init__(config if config is not None else OpenAIConfig(), agent)
        self._client: openai.AsyncOpenAI | None = None
        self._direct: DirectTransport | None = None

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client, created on first use (the ``sdk`` transport, embeddings)."""
        if self._client is None:
            import openai

            from .transport import Limits, Timeout

            cfg = self.config
            # The pool is max_connections, not the SDK's hidden 1,000; a call that finds it
            # full waits connect_timeout for a connection, not the whole timeout.
            limits = Limits(max_connections=cfg.max_connections,
                            max_keepalive_connections=min(cfg.max_connections, KEEPALIVE_CONNECTIONS))
            self._client = openai.AsyncOpenAI(
                api_key=cfg.api_key,
                base_url=cfg.base_url,
                organization=cfg.organization,
                timeout=Timeout(cfg.timeout, connect=cfg.connect_timeout, pool=cfg.connect_timeout),
                max_retries=0,  # the kernel retries (and falls back); tries never multiply
                # The SDK's aiohttp transport costs less CPU per call than its httpx one.
                http_client=(openai.DefaultAioHttpClient(limits=limits) if cfg.http_client == "aiohttp"
                             else openai.DefaultAsyncHttpxClient(limits=limits)),
            )
        return self._client

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """The provider's ``GET /models``, cached; informative unless ``health.required``."""
        return health.provider_checks(self)

    async def start(self) -> None:
        """Create the client, so the first request does not pay for it."""
        registry.add(self.kernel.state, self)  # robutler_embed finds it (its client is made then)
        if self.config.transport == "sdk":
            _ = self.client
        if self.config.transport == "direct":
            self._direct = DirectTransport(self.config)

    async def stop(self) -> None:
        """Close the client and its connections; the skill may be started again."""
        registry.discard(self.kernel.state, self)
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        direct, self._direct = self._direct, None
        if direct is not None:
            await direct.close()

    def _direct_transport(self) -> DirectTransport | None:
        if self.config.transport != "direct":
            return None
        if self._direct is None:
            self._direct = DirectTransport(self.config)
        return self._direct

    def _error(self, exc: Exception, call: LLMCall) -> RequestError:
        error = map_error(exc, model=call.model_name, base_url=self.config.base_url,
                          timeout=self.config.timeout, connect_timeout=self.config.connect_timeout)
        return pool_full(exc, error, plugin=PLUGIN, config=self.config, base_url=self.config.base_url)

    @hookimpl
    async def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult | None:
        """Answer ``openai/...`` calls with one chat completion; ``None`` for other providers."""
        if call.provider != PLUGIN:
            return None
        body = chat_body(call, self.config.default_params, stream=False)
        direct = self._direct_transport()
        if direct is not None:
            answer = await direct.post(body, call.model_name, call.headers)
            try:
                content = await answer.read()
            except Exception as exc:
                raise direct.error(exc, call.model_name) from exc
            finally:
                answer.release()
            return parse_completion(content, call.model_name)
        try:
            response = await post(self.client, "/chat/completions", body, headers=call.headers)
        except sdk_error() as exc:
            raise self._error(exc, call) from exc
        return parse_completion(response.content, call.model_name)

    @hookimpl
    async def llm_stream(
        self, ctx: RequestContext, call: LLMCall
    ) -> AsyncIterator[ChatCompletionChunk] | None:
        """Start a streamed completion for ``openai/...`` calls; ``None`` for other providers.

        The request is sent (and its status checked) before this returns, so upstream
        errors are raised here, before any chunk. Closing the returned iterator closes the
        upstream response, cancelling it.
        """
        if call.provider != PLUGIN:
            return None
        body = chat_body(call, self.config.default_params, stream=True)
        direct = self._direct_transport()
        if direct is not None:
            answer = await direct.post(body, call.model_name, call.headers)
            return chunk_stream(body_reader(answer), closer(answer),
                                lambda exc: direct.error(exc, call.model_name),
                                model=call.model_name, base_url=self.config.base_url)
        try:
            response = await post(self.client, "/chat/completions", body, stream=True, headers=call.headers)
        except sdk_error() as exc:
            raise self._error(exc, call) from exc
        return chunk_stream(response.aiter_bytes(), response.aclose, lambda exc: self._error(exc, call),
                            model=call.model_name, base_url=self.config.base_url)

__all__ = ["OpenAISkill"]

"""Calls to the agent's LLM providers: timed, retried, falling back, metered.

The kernel is the one owner of retries: a provider plugin tries once (its SDK's own
retries off) and marks its errors ``retryable``; :class:`LLMCalls` tries again with backoff
(:mod:`.retry`), then the next model of the agent's list, and only while no token of the
call has reached the client. Every try is a usage record (``attempt``, ``ok``, ``error``)
and a log line. A provider skill whose config is a :class:`~robutler_specs.ProviderConfig`
has each try cut at its ``timeout``: a 504 that names the provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import msgspec

from robutler_specs import (
    BadRequest,
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    LLMCall,
    LLMResult,
    ProviderConfig,
    ProviderError,
    ProviderTimeout,
    RequestContext,
    RequestError,
    RetryPolicy,
    Skill,
    ToolCallDelta,
    UsageRecord,
)

from .assembly import StreamAssembler
from .breaker import CircuitBreaker
from .hooks import SkillHookCaller
from .metrics import LLM_FIRST_TOKEN, LLM_LATENCY, UPSTREAM_ERRORS, child
from .retry import Tries
from .usage import estimate_usage

log = logging.getLogger("robutler.llm")

_replace = msgspec.structs.replace


class LLMCalls:
    """One agent's way to its providers.

    :param agent: the agent's name, for messages.
    :param hooks: the agent's hook caller (``llm_complete`` / ``llm_stream``).
    :param skills: the agent's skills; providers with a ``ProviderConfig`` set timeouts.
    :param policy: the agent's retry settings.
    """

    def __init__(self, agent: str, hooks: SkillHookCaller, skills: Sequence[Skill], policy: RetryPolicy) -> None:
        self.agent = agent
        self.hooks = hooks
        self.policy = policy
        self.timeouts = {
            s.provider: s.config.timeout
            for s in skills
            if s.provider and isinstance(s.config, ProviderConfig)
        }
        self.breaker = CircuitBreaker(policy.breaker_failures, policy.breaker_cooldown)

    def models(self, ctx: RequestContext) -> list[str]:
        """The models one LLM call of ``ctx`` tries, in order: the request's list, models
        whose circuit is open last."""
        if isinstance(ctx.model, str):
            return [ctx.model]
        return self.breaker.order(ctx.model)

    def _tries(self, call: LLMCall) -> Tries:
        """The models to try for ``call``: its own, then its fallbacks (hooks may have
        changed either)."""
        return Tries([call.model, *(m for m in call.fallbacks if m != call.model)], self.policy)

    def _failed(self, call: LLMCall, error: RequestError) -> None:
        """Count a failed try against its model's circuit: only in a fallback list (where
        the order can change), and only errors another try might fix (they alone say
        something about the model's health)."""
        if error.retryable and call.fallbacks and self.breaker.failed(call.model):
            log.warning(
                "agent %s: %s failed %d tries in a row; it is tried after the other models for %gs",
                self.agent, call.model, self.breaker.threshold, self.breaker.cooldown,
            )

    def _succeeded(self, call: LLMCall) -> None:
        if call.fallbacks:
            self.breaker.succeeded(call.model)

    async def _next(self, ctx: RequestContext, call: LLMCall, tries: Tries) -> LLMCall:
        """The next try's call; ``before_llm_call`` sees every try (a pricing skill checks
        what a fallback model costs, and may refuse it)."""
        call = _replace(call, model=tries.model, attempt=tries.attempt)
        await self.hooks.before_llm_call(ctx, call)
        return call

    async def _retry_or_raise(
        self, ctx: RequestContext, call: LLMCall, tries: Tries | None, error: RequestError
    ) -> Tries:
        """Wait before the next try and return the schedule (made on the first failure:
        most calls never need one), or re-raise ``error`` when no try is left."""
        self._failed(call, error)
        if tries is None:
            tries = self._tries(call)
        delay = tries.after_failure(error)
        nxt = "model " + tries.model if tries.model != call.model else "a retry"
        log.warning(
            "agent %s request %s: try %d (%s) failed: %s; %s in %.2fs",
            self.agent, ctx.request_id, call.attempt, call.model, error.message, nxt, delay,
        )
        if delay:
            await asyncio.sleep(delay)
        return tries

    # -- complete ------------------------------------------------------------------------

    async def complete(self, ctx: RequestContext, call: LLMCall) -> tuple[LLMCall, LLMResult]:
        """The provider's answer to ``call`` (tried as the policy allows) and the try that
        gave it."""
        tries: Tries | None = None
        while True:
            started = time.perf_counter()
            try:
                result = await self._complete_once(ctx, call)
            except RequestError as exc:
                self._record_failure(ctx, call, started, exc)
                tries = await self._retry_or_raise(ctx, call, tries, exc)
                call = await self._next(ctx, call, tries)
                continue
            self._record(ctx, call, result, started)
            self._succeeded(call)
            return call, result

    async def _complete_once(self, ctx: RequestContext, call: LLMCall) -> LLMResult:
        timeout = self.timeouts.get(call.provider)
        result: LLMResult | None
        if timeout is None:
            result = await self.hooks.llm_complete(ctx, call)
        else:
            try:
                async with asyncio.timeout(timeout) as scope:
                    result = await self.hooks.llm_complete(ctx, call)
            except TimeoutError:
                if scope.expired():
                    raise self._timed_out(call, timeout) from None
                raise
        if result is None:
            raise self._no_provider(call)
        return result

    # -- stream --------------------------------------------------------------------------

    async def stream(self, ctx: RequestContext, call: LLMCall) -> AsyncGenerator[Delta | Answer, None]:
        """Text deltas of the provider's streamed answer to ``call`` as they arrive, then
        one :class:`Answer`. A try that fails before its first text delta is retried (or
        the next model tried); after it, the error ends the stream. A stream that ends
        without a finish reason failed (``provider_incomplete``): it is metered as cut
        short (``ok=False``, what arrived), never assembled as a whole answer."""
        tries: Tries | None = None
        loop = asyncio.get_running_loop()
        while True:
            started = time.perf_counter()
            assembler = StreamAssembler()
            sent = False
            timeout = self.timeouts.get(call.provider)
            deadline = None if timeout is None else loop.time() + timeout
            try:
                chunks, chunk = await self._open(ctx, call, deadline)
                try:
                    while chunk is not None:
                        assembler.add(chunk)
                        for choice in chunk.choices:
                            if choice.delta.content:
                                if not sent:
                                    sent = True
                                    child(LLM_FIRST_TOKEN, call.provider, call.model).observe(time.perf_counter() - started)
                                yield Delta(content=choice.delta.content)
                        if chunks is None:
                            break
                        if deadline is not None and loop.time() > deadline:
                            raise self._timed_out(call, timeout)
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            break
                finally:
                    if chunks is not None:
                        await _aclose(chunks)
                if assembler.finish_reason is None:
                    raise self._incomplete(call)
            except RequestError as exc:
                if sent:
                    self._record_partial(ctx, call, assembler, started, exc)
                    self._failed(call, exc)
                    raise
                self._record_failure(ctx, call, started, exc, assembler)
                tries = await self._retry_or_raise(ctx, call, tries, exc)
                call = await self._next(ctx, call, tries)
                continue
            except Exception as exc:
                self._record_partial(ctx, call, assembler, started, exc)
                raise ProviderError(
                    f"provider {call.provider!r} failed while streaming {call.model!r}: "
                    f"{type(exc).__name__}: {exc}",
                    plugin=call.provider,
                    retryable=False,
                ) from exc
            except BaseException as exc:  # the client went away (GeneratorExit, CancelledError)
                self._record_partial(ctx, call, assembler, started, exc)
                raise
            result = assembler.result()
            self._record(ctx, call, result, started)
            self._succeeded(call)
            yield Answer(call, result)
            return

    async def _open(
        self, ctx: RequestContext, call: LLMCall, deadline: float | None
    ) -> tuple[AsyncIterator[ChatCompletionChunk] | None, ChatCompletionChunk | None]:
        """Open the provider's stream for one try and read its first chunk, within
        ``deadline``; the caller checks it between later chunks (a timer per chunk would
        cost more than the kernel's own work on it), and a provider that goes silent
        mid-stream is cut by its HTTP client's read timeout. A provider that only
        completes answers in one chunk (and no stream)."""
        try:
            if deadline is None:
                return await self._first(ctx, call)
            async with asyncio.timeout_at(deadline) as scope:
                return await self._first(ctx, call)
        except TimeoutError:
            if deadline is not None and scope.expired():
                raise self._timed_out(call, self.timeouts.get(call.provider)) from None
            raise

    async def _first(
        self, ctx: RequestContext, call: LLMCall
    ) -> tuple[AsyncIterator[ChatCompletionChunk] | None, ChatCompletionChunk | None]:
        stream = await self.hooks.llm_stream(ctx, call)
        if stream is None:
            result = await self.hooks.llm_complete(ctx, call)
            if result is None:
                raise self._no_provider(call)
            return None, _as_chunk(result)
        try:
            return stream, await anext(stream, None)
        except BaseException:
            await _aclose(stream)
            raise

    # -- metering ------------------------------------------------------------------------

    def _record_failure(
        self, ctx: RequestContext, call: LLMCall, started: float, exc: RequestError,
        assembler: StreamAssembler | None = None,
    ) -> None:
        """A try that failed before the client saw any of it: what it produced (tool-call
        deltas, usage), else no tokens."""
        if assembler is not None and (assembler.usage or assembler.has_output):
            self._record_partial(ctx, call, assembler, started, exc)
            return
        _count_error(call, exc)
        ctx.usage.append(
            UsageRecord(
                kind="llm", name=call.model, plugin=call.provider, attempt=call.attempt,
                ok=False, error=exc.message, duration_ms=(time.perf_counter() - started) * 1000,
            )
        )

    def _record_partial(
        self, ctx: RequestContext, call: LLMCall, assembler: StreamAssembler, started: float, exc: BaseException
    ) -> None:
        """Meter a stream that ended early: what was produced, estimated unless the
        provider already reported usage (so pricing skills can bill what was delivered)."""
        reason = exc.message if isinstance(exc, RequestError) else type(exc).__name__
        if isinstance(exc, Exception):  # not the client going away
            _count_error(call, exc)
        self._record(ctx, call, assembler.result(), started, ok=False, error=f"stream ended early: {reason}")

    def _record(
        self, ctx: RequestContext, call: LLMCall, result: LLMResult, started: float,
        *, ok: bool = True, error: str | None = None,
    ) -> None:
        duration = time.perf_counter() - started
        if ok:
            child(LLM_LATENCY, call.provider, call.model).observe(duration)
        usage = result.usage
        if usage.prompt_tokens == 0 and usage.completion_tokens == 0:
            usage = result.usage = estimate_usage(call.messages, result.message)
        ctx.usage.append(
            UsageRecord(
                kind="llm",
                name=call.model,
                plugin=call.provider,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cache_read_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_creation_tokens,
                estimated=bool(usage.estimated),
                attempt=call.attempt,
                ok=ok,
                error=error,
                duration_ms=duration * 1000,
            )
        )

    # -- errors --------------------------------------------------------------------------

    def _timed_out(self, call: LLMCall, timeout: float | None) -> ProviderTimeout:
        return ProviderTimeout(
            f"provider {call.provider!r} did not finish {call.model!r} within {timeout:g}s "
            f"(the {call.provider} skill's timeout; raise it if the model is slow)",
            plugin=call.provider,
        )

    def _incomplete(self, call: LLMCall) -> ProviderError:
        """A stream that ended without a finish reason: whatever the provider plugin
        says, the answer was cut short, and it is never passed off as a whole one."""
        return ProviderError(
            f"provider {call.provider!r} ended the stream of {call.model!r} without a finish "
            "reason: the answer is incomplete (the upstream broke off)",
            code="provider_incomplete",
            plugin=call.provider,
        )

    def _no_provider(self, call: LLMCall) -> RequestError:
        return BadRequest(
            f"agent {self.agent!r} has no skill serving model {call.model!r}; add the "
            f"{call.provider!r} skill to the agent",
            param="model",
            code="model_not_found",
        )


def _count_error(call: LLMCall, exc: Exception) -> None:
    """Count a failed try as an upstream error of its provider, by the status it became
    (a model no skill serves is the agent's configuration, not the upstream's)."""
    if isinstance(exc, RequestError):
        if exc.code == "model_not_found":
            return
        status = str(exc.status)
    else:
        status = "502"
    child(UPSTREAM_ERRORS, call.provider, status).inc()


class Answer(msgspec.Struct):
    """The end of a streamed LLM call: the try that answered and its assembled result."""

    call: LLMCall
    result: LLMResult


def _as_chunk(result: LLMResult) -> ChatCompletionChunk:
    """A completion as one chunk (for providers that do not stream)."""
    message = result.message
    calls = [
        ToolCallDelta(index=i, id=c.id, type="function",
                      function=FunctionCallDelta(name=c.function.name, arguments=c.function.arguments))
        for i, c in enumerate(message.tool_calls or [])
    ]
    delta = Delta(content=message.text() or None, tool_calls=calls or None)
    return ChatCompletionChunk(
        id="", created=0, model=result.model or "",
        choices=[ChunkChoice(0, delta, result.finish_reason)], usage=result.usage,
    )


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


__all__ = ["Answer", "LLMCalls"]

"""An agent and its request loop: hooks, LLM, tools, again, up to ``max_tool_rounds``."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import msgspec
import pluggy

from robutler_specs import (
    FORWARDED_PARAMS,
    SKILL_HOOKS,
    AgentSpec,
    BadRequest,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    LLMCall,
    Message,
    PluginError,
    RequestContext,
    Skill,
    ToolCallDelta,
    ToolDefinition,
    ToolInvocation,
    ToolSpec,
)
from robutler_specs.tools import HttpInfo, PromptInfo

from .hooks import HookCaller
from .llm import Answer, LLMCalls
from .toolrunner import run_tools

log = logging.getLogger("robutler.agent")

Prompt = tuple[PromptInfo, Callable[..., Any], bool]


class _Finalizer:
    """Guarantees ``finalize_connection`` for one request (``async with``): early on
    success (:meth:`success`), else on the way out with the error, a disconnect being a
    ``CancelledError``. A class, not an ``@asynccontextmanager``: it runs on every request."""

    __slots__ = ("agent", "ctx", "done")

    def __init__(self, agent: Agent, ctx: RequestContext) -> None:
        self.agent, self.ctx, self.done = agent, ctx, False

    async def __aenter__(self) -> _Finalizer:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.done:
            return
        if kind is GeneratorExit:  # the stream's consumer closed it: the client went away
            exc = asyncio.CancelledError("client disconnected")
        await self.agent._finalize(self.ctx, exc)

    async def success(self) -> None:
        """The request succeeded: finalize now (so what it settles is reported)."""
        self.done = True
        await self.agent._finalize(self.ctx, None)


@dataclass(slots=True)
class Outcome:
    """How a request ended: the final assistant message and its finish reason."""

    message: Message
    finish_reason: str


class Agent:
    """One configured agent: its spec, skill instances, hooks, tools and prompts.

    ``run`` / ``run_streaming`` serve library use; the HTTP server builds a
    :class:`RequestContext` itself and calls :meth:`complete` / :meth:`stream`.
    """

    def __init__(
        self,
        spec: AgentSpec,
        skills: Sequence[Skill],
        pm: pluggy.PluginManager,
        tools: Sequence[ToolSpec] = (),
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.skills = list(skills)
        self.hooks = HookCaller(pm, SKILL_HOOKS)
        self.llm = LLMCalls(spec.name, self.hooks, self.skills, spec.retry)
        #: Called as ``observer(ctx, error)`` after ``finalize_connection`` (metrics).
        self.observers: list[Callable[[RequestContext, BaseException | None], None]] = []
        self.tools: dict[str, ToolSpec] = {}
        for tool in [t for s in self.skills for t in s.tools()] + list(tools):
            if tool.name in self.tools:
                raise PluginError(
                    f"agent {spec.name!r}: tool {tool.name!r} is defined by both "
                    f"{self.tools[tool.name].plugin or 'config'} and {tool.plugin or 'config'}"
                )
            self.tools[tool.name] = tool
        self._public_tools = {n: t for n, t in self.tools.items() if t.scope == "all"}
        self._public_definitions = [t.definition for t in self._public_tools.values()]
        prompts: list[Prompt] = []
        for skill in self.skills:
            for info, fn in skill.prompts():
                prompts.append((info, fn, bool(inspect.signature(fn).parameters)))
        self.prompts = sorted(prompts, key=lambda p: p[0].priority)
        self._http: dict[tuple[str, str], tuple[HttpInfo, Callable[..., Any]]] = {}
        for skill in self.skills:
            for http_info, fn in skill.http_endpoints():
                for method in http_info.methods:
                    self._http[(http_info.path, method)] = (http_info, fn)

    def model_for(self, requested: str | None) -> str | list[str]:
        """The model (or fallback list) a request runs on.

        The agent's own, when the request's ``model`` field is empty, the agent's name or
        the agent's first model; the one named, when it is another of the agent's models or
        one of its ``allowed_models`` (then without fallback: the caller chose it);
        otherwise a 400 that lists what may be asked for.
        """
        spec = self.spec
        if not requested or requested == self.name or requested == spec.models[0]:
            return spec.model
        if requested in spec.models or requested in spec.allowed_models:
            return requested
        allowed = ", ".join(self.requestable_models())
        raise BadRequest(
            f"agent {self.name!r} does not allow model {requested!r}; ask for one of: {allowed} "
            f"(or send the agent's name, {self.name!r}, for its default)",
            param="model",
            code="model_not_allowed",
        )

    def requestable_models(self) -> list[str]:
        """Every model a request may ask for: the agent's list, then its allowed models."""
        return self.spec.models + [m for m in self.spec.allowed_models if m not in self.spec.models]

    def http_endpoint(self, path: str, method: str) -> tuple[HttpInfo, Callable[..., Any]] | None:
        """The skill ``@http`` endpoint serving ``method /{agent}/{path}``, if any."""
        return self._http.get((path.strip("/"), method.upper()))

    # -- entry points ----------------------------------------------------------------

    def context(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        *,
        stream: bool = False,
        tools: Sequence[ToolDefinition | Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> RequestContext:
        """A new request context for ``messages`` (Messages or dicts) and LLM params;
        ``model`` picks one of the agent's models or ``allowed_models``."""
        unknown = set(params) - set(FORWARDED_PARAMS)
        if unknown:
            raise TypeError(f"unknown LLM parameters: {', '.join(sorted(unknown))}")
        return RequestContext(
            self.spec,
            msgspec.convert(list(messages), list[Message]),
            params={k: v for k, v in params.items() if v is not None},
            client_tools=msgspec.convert(list(tools or []), list[ToolDefinition]),
            stream=stream,
            headers=headers,
            request_id=request_id,
            requested_model=model,
        )

    async def run(self, messages: Sequence[Message | Mapping[str, Any]], **params: Any) -> ChatCompletion:
        """Answer a conversation (library use): the full loop, one completion."""
        return await self.complete(self.context(messages, **params))

    async def run_streaming(
        self, messages: Sequence[Message | Mapping[str, Any]], **params: Any
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Answer a conversation as a stream of chunks (library use)."""
        async with aclosing(self.stream(self.context(messages, stream=True, **params))) as chunks:
            async for chunk in chunks:
                yield chunk

    async def complete(self, ctx: RequestContext) -> ChatCompletion:
        """Run the loop for ``ctx`` and return the completion; ``finalize_connection``
        always runs."""
        async with _Finalizer(self, ctx) as finalizer:
            outcome: Any = None
            async with aclosing(self._loop(ctx)) as items:
                async for item in items:
                    outcome = item
            await finalizer.success()
            return ChatCompletion(
                id=ctx.request_id,
                created=ctx.created,
                model=self.name,
                choices=[Choice(0, outcome.message, outcome.finish_reason)],
                usage=ctx.total_usage(),
            )
        raise AssertionError("unreachable")  # pragma: no cover (for type checkers)

    async def stream(
        self, ctx: RequestContext, *, include_usage: bool = False
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Run the loop for ``ctx`` as chunks: a role chunk, deltas, then a final chunk
        with ``finish_reason`` and ``usage`` (and, with ``include_usage``, one more chunk
        with no choices and the usage, as OpenAI's ``stream_options`` does). Closing the
        iterator early (client gone) closes the provider stream; ``finalize_connection``
        always runs."""
        chunk_hooks = self.hooks.implemented("on_chunk")
        started = False
        async with _Finalizer(self, ctx) as finalizer:
            async with aclosing(self._loop(ctx)) as items:
                async for item in items:
                    if isinstance(item, Outcome):
                        break
                    if not started:
                        started = True
                        first = self._chunk(ctx, Delta(role="assistant", content=""))
                        yield await self._on_chunk(ctx, first) if chunk_hooks else first
                    chunk = self._chunk(ctx, item)
                    yield await self._on_chunk(ctx, chunk) if chunk_hooks else chunk
            if not started:
                yield self._chunk(ctx, Delta(role="assistant", content=""))
            # Finalize before the last chunk, so what it settles (cost) is reported.
            await finalizer.success()
            usage = ctx.total_usage()
            final = ChatCompletionChunk(
                id=ctx.request_id,
                created=ctx.created,
                model=self.name,
                choices=[ChunkChoice(0, Delta(), item.finish_reason)],
                usage=usage,
            )
            yield await self._on_chunk(ctx, final) if chunk_hooks else final
            if include_usage:
                yield ChatCompletionChunk(
                    id=ctx.request_id, created=ctx.created, model=self.name, choices=[], usage=usage
                )

    async def _finalize(self, ctx: RequestContext, error: BaseException | None) -> None:
        await self.hooks.call_all_logged("finalize_connection", ctx=ctx, error=error)
        for observe in self.observers:
            try:
                observe(ctx, error)
            except Exception:
                log.exception("observer %r failed", observe)

    # -- the loop ------------------------------------------------------------------------

    def _chunk(self, ctx: RequestContext, delta: Delta) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=ctx.request_id, created=ctx.created, model=self.name, choices=[ChunkChoice(0, delta)]
        )

    async def _on_chunk(self, ctx: RequestContext, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        result: ChatCompletionChunk = await self.hooks.chain("on_chunk", "chunk", ctx=ctx, chunk=chunk)
        return result

    def permitted_tools(self, ctx: RequestContext) -> dict[str, ToolSpec]:
        """The tools this caller may see and run: agent tools and request overlay,
        filtered by scope."""
        extra = ctx.extra_tools
        if ctx.identity.scopes == ("all",) and not extra:
            return self._public_tools
        allowed = {n: t for n, t in self.tools.items() if ctx.identity.allows(t.scope)}
        allowed.update((n, t) for n, t in extra.items() if ctx.identity.allows(t.scope))
        return allowed

    async def system_prompt(self, ctx: RequestContext) -> str:
        """Instructions, then ``@prompt`` fragments the caller may see, then
        ``build_prompt`` fragments."""
        parts = [self.spec.instructions]
        for info, fn, takes_ctx in self.prompts:
            if not ctx.identity.allows(info.scope):
                continue
            value = fn(ctx) if takes_ctx else fn()
            if inspect.isawaitable(value):
                value = await value
            parts.append(value)
        if self.hooks.implemented("build_prompt"):
            parts.extend(await self.hooks.call("build_prompt", ctx=ctx))
        return "\n\n".join(p for p in parts if p)

    async def _incoming(self, ctx: RequestContext) -> None:
        user = ctx.user_message
        if user is None or not self.hooks.implemented("on_message"):
            return
        replaced = await self.hooks.chain("on_message", "message", ctx=ctx, message=user)
        if replaced is not user:
            index = max(i for i, m in enumerate(ctx.messages) if m is user)
            ctx.messages[index] = replaced

    async def _loop(self, ctx: RequestContext) -> AsyncGenerator[Any, None]:
        """Yields text deltas (stream mode only), then one :class:`Outcome`."""
        hooks = self.hooks
        if hooks.implemented("on_connection"):
            await hooks.call("on_connection", ctx=ctx)
        if ctx.requested_model:
            ctx.model = self.model_for(ctx.requested_model)
        await self._incoming(ctx)
        tools = self.permitted_tools(ctx)
        definitions = (
            self._public_definitions if tools is self._public_tools else [t.definition for t in tools.values()]
        )
        client_names = {t.function.name for t in ctx.client_tools}
        clash = client_names & set(tools)
        if clash:
            raise BadRequest(
                f"tool name(s) {', '.join(sorted(clash))} sent in the request clash with the "
                f"agent's own tools; rename them",
                param="tools",
            )
        if ctx.client_tools:
            definitions = definitions + ctx.client_tools
        system = await self.system_prompt(ctx)
        conversation = ([Message(role="system", content=system)] if system else []) + list(ctx.messages)
        outcome: Outcome | None = None
        round_ = 0
        while outcome is None:
            model, *fallbacks = self.llm.models(ctx)
            call = LLMCall(
                model=model,
                fallbacks=fallbacks,
                messages=list(conversation),
                tools=list(definitions),  # hooks may edit it in place
                params=dict(ctx.params),
                stream=ctx.stream,
                round=round_,
            )
            if hooks.implemented("before_llm_call"):
                await hooks.call("before_llm_call", ctx=ctx, call=call)
            if call.stream:
                answer: Answer | None = None
                async with aclosing(self.llm.stream(ctx, call)) as deltas:
                    async for item in deltas:
                        if isinstance(item, Answer):
                            answer = item
                        else:
                            yield item
                assert answer is not None
                call, result = answer.call, answer.result
            else:
                call, result = await self.llm.complete(ctx, call)
            if hooks.implemented("after_llm_call"):
                await hooks.call("after_llm_call", ctx=ctx, call=call, result=result)
            message = result.message
            if not message.tool_calls:
                outcome = Outcome(message, result.finish_reason)
                break
            client_calls = [c for c in message.tool_calls if c.function.name in client_names]
            internal = [
                ToolInvocation(
                    id=c.id, name=c.function.name, arguments=c.function.arguments,
                    tool=tools.get(c.function.name), round=round_,
                )
                for c in message.tool_calls
                if c.function.name not in client_names
            ]
            if internal and round_ >= self.spec.max_tool_rounds:
                note = (
                    f"[stopped: the model asked for more tool calls after {round_} tool "
                    f"round(s); the agent allows max_tool_rounds={self.spec.max_tool_rounds}]"
                )
                if call.stream:
                    yield Delta(content=note)
                outcome = Outcome(Message(role="assistant", content=note), "length")
                break
            conversation.append(message)
            if internal:
                results = await run_tools(hooks, ctx, internal, self.spec.tool_timeout)
                conversation.extend(
                    Message(role="tool", tool_call_id=inv.id, content=res.content)
                    for inv, res in zip(internal, results, strict=True)
                )
                handoff = next(
                    (r for inv, r in zip(internal, results, strict=True) if inv.tool and inv.tool.is_handoff),
                    None,
                )
                if handoff is not None:
                    if call.stream:
                        yield Delta(content=handoff.content)
                    outcome = Outcome(Message(role="assistant", content=handoff.content), "stop")
                    break
            if client_calls:
                if call.stream:
                    yield Delta(
                        tool_calls=[
                            ToolCallDelta(
                                index=i, id=c.id, type="function",
                                function=FunctionCallDelta(name=c.function.name, arguments=c.function.arguments),
                            )
                            for i, c in enumerate(client_calls)
                        ]
                    )
                outcome = Outcome(
                    Message(role="assistant", content=message.content, tool_calls=client_calls),
                    "tool_calls",
                )
                break
            round_ += 1
        if hooks.implemented("on_message"):
            final = await hooks.chain("on_message", "message", ctx=ctx, message=outcome.message)
            if not ctx.stream:  # a streamed message is already sent; hooks can only observe it
                outcome.message = final
        yield outcome

    def info(self) -> dict[str, Any]:
        """Public agent info: name, description, skills, public tools, models, intents."""
        return {
            "name": self.name,
            "description": self.spec.description,
            "model": self.spec.model,
            "models": self.requestable_models(),
            "allowed_models": self.spec.allowed_models,
            # Models of the fallback list tried last for now, and the seconds left.
            "open_models": self.llm.breaker.open_models(),
            "skills": [s.name for s in self.skills],
            "tools": [
                {
                    "name": t.name,
                    "description": t.description,
                    "plugin": t.plugin,
                    "pricing": None if t.pricing is None else {"credits": t.pricing.credits, "per": t.pricing.per},
                }
                for t in self._public_tools.values()
            ],
            "intents": self.spec.intents,
            "metadata": self.spec.metadata,
            "skill_info": {s.name: d for s in self.skills if (d := s.describe()) is not None},
        }

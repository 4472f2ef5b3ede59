"""The ``otel`` skill: one span per request, per LLM try, per tool call, per handoff.

The tree of one request::

    invoke_agent <agent>          SERVER   on_connection .. finalize_connection
      chat <model>                CLIENT   before_llm_call .. after_llm_call (each try)
      execute_tool <tool>         INTERNAL before_toolcall .. after_toolcall
      handoff <target>            INTERNAL before_handoff .. after_handoff
        invoke_agent <target>     SERVER   (the target's own request span, when it is traced)

Hook order: the skill sits in the analytics band (priority 90), but the hooks that open a
span are ``tryfirst`` and those that close one ``trylast``, so the request span covers
every other skill's ``on_connection`` (auth, rate limits) and ``finalize_connection``
(payments settling, memory written), and a tool span covers the other skills' checks. The
exception is ``before_llm_call``, ``trylast``: the LLM span starts after the other skills
edited the call (a pricing skill refusing a model means no call, and no span).

The kernel calls no hook when an LLM try fails or a handoff fails before its target
answered; such a span is closed by the next hook that comes (the retry's
``before_llm_call``, ``finalize_connection``) from the usage record the kernel wrote for
it: its error and its duration, so the span ends when the try did, not at the retry.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from robutler_specs import (
    AgentSpec,
    LLMCall,
    LLMResult,
    RequestContext,
    RequestError,
    Skill,
    ToolInvocation,
    ToolResult,
    UsageRecord,
    hookimpl,
)

from .config import OtelConfig
from .propagation import Forward, enter, extract, inject, leave
from .provider import Tracing, tracing

#: Where a request's :class:`RequestTrace` lives in ``ctx.state``.
STATE_KEY = "otel"
#: The longest error text put on a span.
MAX_ERROR = 500


class RequestTrace:
    """The open spans of one request."""

    __slots__ = ("context", "handoffs", "llm", "span", "tools")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.context: Context = set_span_in_context(span)
        #: the LLM try in flight: its call, span and start (ns)
        self.llm: tuple[LLMCall, Span, int] | None = None
        #: open tool and handoff spans by invocation, with what :func:`leave` restores
        self.tools: dict[int, tuple[ToolInvocation, Span, int, Any]] = {}
        self.handoffs: dict[int, tuple[ToolInvocation, Span, int, Any]] = {}


def _last(ctx: RequestContext, kind: str, name: str, attempt: int | None = None) -> UsageRecord | None:
    """The kernel's latest usage record of ``kind`` for ``name`` (and ``attempt``)."""
    for record in reversed(ctx.usage):
        if record.kind == kind and record.name == name and (attempt is None or record.attempt == attempt):
            return record
    return None


def _fail(span: Span, message: str, kind: str | None = None) -> None:
    span.set_status(Status(StatusCode.ERROR, message[:MAX_ERROR]))
    if kind:
        span.set_attribute("error.type", kind)


def _end_from(span: Span, started: int, record: UsageRecord | None) -> None:
    """End ``span`` as ``record`` (the kernel's meter of it) says: its error and duration."""
    if record is None:
        _fail(span, "did not finish (the request ended first)", "incomplete")
        span.end()
        return
    if not record.ok:
        _fail(span, record.error or "failed", "failed")
    span.end(end_time=started + int(record.duration_ms * 1e6) if record.duration_ms else None)


class OtelSkill(Skill):
    """Traces the agent's requests with OpenTelemetry (``docs/plugins/otel.md``)."""

    name: ClassVar[str] = "otel"
    priority: ClassVar[int] = 90
    description: ClassVar[str] = "OpenTelemetry traces of requests, LLM calls, tool calls and handoffs"
    Config: ClassVar[type[OtelConfig]] = OtelConfig

    config: OtelConfig

    def __init__(self, config: OtelConfig | None, agent: AgentSpec) -> None:
        super().__init__(config if config is not None else OtelConfig(), agent)
        self._tracing: Tracing | None = None
        self._static: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent.name}
        self._static.update(self.config.attributes)
        self._handoff_targets = {t.tool_name: t for t in agent.handoff_targets}

    @property
    def tracing(self) -> Tracing:
        """The kernel's tracer (built from ``plugins.otel`` on first use)."""
        if self._tracing is None:
            self._tracing = tracing(self.kernel)
        return self._tracing

    async def start(self) -> None:
        """Build the provider now, not on the first request."""
        _ = self.tracing

    async def stop(self) -> None:
        """Forget the provider: shutdown stopped it, a restart builds another."""
        self._tracing = None

    # -- the request ---------------------------------------------------------------------

    def _begin(self, ctx: RequestContext) -> RequestTrace:
        parent = extract(ctx.headers) if self.config.trust_incoming else None
        attributes = dict(self._static)
        attributes["robutler.request_id"] = ctx.request_id
        attributes["robutler.stream"] = ctx.stream
        if ctx.chain:
            attributes["robutler.chain"] = list(ctx.chain)
        span = self.tracing.tracer.start_span(
            f"invoke_agent {ctx.agent.name}", context=parent, kind=SpanKind.SERVER, attributes=attributes,
        )
        trace = ctx.state[STATE_KEY] = RequestTrace(span)
        if self.config.propagate:
            ctx.forward_headers = Forward(trace, span)
        return trace

    @hookimpl(tryfirst=True)
    def on_connection(self, ctx: RequestContext) -> None:
        """Open the request span (continuing the caller's trace)."""
        self._begin(ctx)

    @hookimpl(trylast=True)
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        """Close what is open, then the request span with the caller, usage, cost and error."""
        trace: RequestTrace | None = ctx.state.get(STATE_KEY)
        if trace is None:  # refused before on_connection reached this skill
            trace = self._begin(ctx)
        self._close_llm(ctx, trace)
        for inv, span, started, _ in trace.tools.values():
            _end_from(span, started, _last(ctx, "tool", inv.name))
        for inv, span, started, _ in trace.handoffs.values():
            _end_from(span, started, _last(ctx, "handoff", inv.name))
        trace.tools.clear()
        trace.handoffs.clear()
        span = trace.span
        if ctx.identity.user_id is not None:
            span.set_attribute("robutler.caller", ctx.identity.user_id)
        usage = ctx.total_usage()
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.estimated:
            span.set_attribute("robutler.usage.estimated", True)
        if isinstance(usage.cost, (int, float)):
            span.set_attribute("robutler.cost", float(usage.cost))
        if ctx.answered_by:
            span.set_attribute("robutler.answered_by", ctx.answered_by)
        if error is not None:
            if isinstance(error, RequestError):
                span.set_attribute("http.response.status_code", error.status)
                _fail(span, error.message, error.code or type(error).__name__)
            elif isinstance(error, asyncio.CancelledError):
                _fail(span, "the client went away, or the request timed out", "cancelled")
            else:
                span.record_exception(error)
                _fail(span, f"{type(error).__name__}: {error}", type(error).__qualname__)
        span.end()

    # -- LLM calls -----------------------------------------------------------------------

    def _close_llm(self, ctx: RequestContext, trace: RequestTrace) -> None:
        """Close a try the kernel called no hook after (it failed), from its usage record."""
        if trace.llm is None:
            return
        call, span, started = trace.llm
        trace.llm = None
        record = _last(ctx, "llm", call.model, call.attempt)
        if record is not None:
            span.set_attribute("gen_ai.usage.input_tokens", record.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", record.completion_tokens)
        _end_from(span, started, record)

    @hookimpl(trylast=True)
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        """Open the try's span; its ``traceparent`` goes upstream."""
        trace: RequestTrace | None = ctx.state.get(STATE_KEY)
        if trace is None:
            return
        self._close_llm(ctx, trace)
        started = time.time_ns()
        span = self.tracing.tracer.start_span(
            f"chat {call.model_name}", context=trace.context, kind=SpanKind.CLIENT, start_time=started,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": call.provider,
                "gen_ai.request.model": call.model_name,
                "robutler.model": call.model,
                "robutler.llm.attempt": call.attempt,
                "robutler.llm.round": call.round,
                "robutler.stream": call.stream,
            },
        )
        trace.llm = (call, span, started)
        if self.config.propagate:
            call.headers = {**call.headers, **inject(span)}

    @hookimpl(trylast=True)
    def after_llm_call(self, ctx: RequestContext, call: LLMCall, result: LLMResult) -> None:
        """Close the try's span with its tokens and finish reason."""
        trace: RequestTrace | None = ctx.state.get(STATE_KEY)
        if trace is None or trace.llm is None:
            return
        span = trace.llm[1]
        trace.llm = None
        usage = result.usage
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.cached_tokens:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens)
        if usage.estimated:
            span.set_attribute("robutler.usage.estimated", True)
        span.set_attribute("gen_ai.response.finish_reasons", [result.finish_reason])
        if result.model:
            span.set_attribute("gen_ai.response.model", result.model)
        span.end()

    # -- tools and handoffs --------------------------------------------------------------

    def _open(self, ctx: RequestContext, inv: ToolInvocation, name: str, attributes: dict[str, Any],
              into: str) -> None:
        trace: RequestTrace | None = ctx.state.get(STATE_KEY)
        if trace is None:
            return
        started = time.time_ns()
        span = self.tracing.tracer.start_span(
            name, context=trace.context, kind=SpanKind.INTERNAL, start_time=started, attributes=attributes,
        )
        previous = enter(trace, span) if self.config.propagate else None
        getattr(trace, into)[id(inv)] = (inv, span, started, previous)

    def _close(self, ctx: RequestContext, inv: ToolInvocation, result: ToolResult, into: str) -> None:
        trace: RequestTrace | None = ctx.state.get(STATE_KEY)
        if trace is None:
            return
        found = getattr(trace, into).pop(id(inv), None)
        if found is None:
            return
        _, span, _, previous = found
        if self.config.propagate:
            leave(previous)
        if result.is_error:
            _fail(span, result.content, "tool_error")
        span.end()

    @hookimpl(tryfirst=True)
    def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> None:
        """Open the tool call's span (``ask_agent`` passes it on to the agent asked)."""
        plugin = call.tool.plugin if call.tool is not None else None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "robutler.llm.round": call.round,
        }
        if plugin:
            attributes["robutler.tool.plugin"] = plugin
        self._open(ctx, call, f"execute_tool {call.name}", attributes, "tools")

    @hookimpl(trylast=True)
    def after_toolcall(self, ctx: RequestContext, call: ToolInvocation, result: ToolResult) -> None:
        """Close the tool call's span (an error result is an error status)."""
        self._close(ctx, call, result, "tools")

    @hookimpl(tryfirst=True)
    def before_handoff(self, ctx: RequestContext, handoff: ToolInvocation) -> None:
        """Open the handoff's span: the target's request span is its child."""
        target = self._handoff_targets.get(handoff.name)
        attributes: dict[str, Any] = {"gen_ai.operation.name": "handoff", "gen_ai.tool.name": handoff.name}
        if target is not None:
            attributes["robutler.handoff.target"] = target.agent
            attributes["robutler.handoff.remote"] = target.remote
        where = target.agent if target is not None else handoff.name
        self._open(ctx, handoff, f"handoff {where}", attributes, "handoffs")

    @hookimpl(trylast=True)
    def after_handoff(self, ctx: RequestContext, handoff: ToolInvocation, result: ToolResult) -> None:
        """Close the handoff's span."""
        self._close(ctx, handoff, result, "handoffs")


__all__ = ["STATE_KEY", "OtelSkill", "RequestTrace"]

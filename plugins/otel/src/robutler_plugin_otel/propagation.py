"""W3C trace context in and out: ``traceparent`` / ``tracestate``.

In: a caller's headers (``ctx.headers``) give the request span its parent. Out: LLM calls
get the headers of their own span (``LLMCall.headers``), and calls to other agents
(``ctx.forward_headers``, read by the kernel for a local agent and by nli for a remote one)
the headers of the span they run under: a handoff's, a tool call's (``ask_agent``), else
the request's.

Tool calls of one model turn run concurrently, each in its own asyncio task, so "the span
a call runs under" is a context variable set by ``before_toolcall`` / ``before_handoff`` in
that task, not a field of the shared request context.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"

#: The span the current task calls other agents under, with the request it belongs to
#: (a local agent's request runs in its caller's task: it must not take its caller's span).
OUTBOUND: ContextVar[tuple[object, Span] | None] = ContextVar("robutler_otel_outbound", default=None)


def extract(headers: Mapping[str, str]) -> Context | None:
    """The caller's trace context, or ``None`` when its headers carry none."""
    if TRACEPARENT not in headers:
        return None
    return _PROPAGATOR.extract(headers)


def inject(span: Span) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``, when there is one) naming ``span`` as parent."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier


class Forward(Mapping[str, str]):
    """``ctx.forward_headers`` of a traced request: the headers of the span the calling
    task is under (:data:`OUTBOUND`), else of the request's span."""

    __slots__ = ("_cache", "_owner", "_root")

    def __init__(self, owner: object, root: Span) -> None:
        self._owner = owner
        self._root = root
        self._cache: dict[Span, dict[str, str]] = {}

    def current(self) -> dict[str, str]:
        """The headers for a call made now, from the calling task."""
        found = OUTBOUND.get()
        span = found[1] if found is not None and found[0] is self._owner else self._root
        headers = self._cache.get(span)
        if headers is None:
            headers = self._cache[span] = inject(span)
        return headers

    def __getitem__(self, key: str) -> str:
        return self.current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.current())

    def __len__(self) -> int:
        return len(self.current())

    def __repr__(self) -> str:
        return f"Forward({self.current()!r})"


def enter(owner: object, span: Span) -> Any:
    """Make ``span`` the one the current task calls other agents under; returns what to
    give :func:`leave`."""
    previous = OUTBOUND.get()
    OUTBOUND.set((owner, span))
    return previous


def leave(previous: Any) -> None:
    """Undo :func:`enter` (a plain ``set``: the hook pair may not share one context)."""
    OUTBOUND.set(previous)


__all__ = ["OUTBOUND", "TRACEPARENT", "Forward", "enter", "extract", "inject", "leave"]

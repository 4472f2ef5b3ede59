"""Shared helpers of the otel tests: kernels traced into an in-memory exporter, span trees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import robutler_plugin_otel as otel
import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.config import config_from_dict

TOOLS = ["tests.plugins.otel.support:lookup"]
#: A caller's trace: trace id, parent span id.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def lookup(city: str) -> str:
    """The weather of a city.

    Args:
        city: the city
    """
    return f"Sunny in {city}"


def kernel_with(agents: dict[str, dict[str, Any]], plugins: Iterable[Any] = (),
                settings: dict[str, Any] | None = None) -> Kernel:
    """A kernel with scripted, otel and ``plugins``; ``plugins.otel`` is ``settings``."""
    config = config_from_dict({
        "server": {"metrics_port": None},
        "agents": agents,
        "plugins": {"otel": settings if settings is not None else {"exporter": "none"}},
    })
    return Kernel(config, plugins=[scripted, otel, *plugins], discover=False)


def traced(agents: dict[str, dict[str, Any]], plugins: Iterable[Any] = (),
           exporter: InMemorySpanExporter | None = None) -> tuple[Kernel, InMemorySpanExporter]:
    """A kernel whose otel skills trace into an in-memory exporter (ended spans at once)."""
    kernel = kernel_with(agents, plugins)
    exporter = exporter or InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.use_tracer_provider(kernel, provider)
    return kernel, exporter


def hexid(value: int, width: int = 16) -> str:
    return f"{value:0{width}x}"


def tree(spans: Sequence[ReadableSpan]) -> list[Any]:
    """The spans as nested ``(name, [children...])`` in start order, roots first; a root
    whose parent is not among them (a caller's span) counts as a root."""
    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)

    def nest(parent: int | None) -> list[Any]:
        found = sorted(children.get(parent, []), key=lambda s: s.start_time or 0)
        return [(s.name, nest(s.context.span_id)) for s in found]

    return nest(None)


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    """The spans called ``name``, in start order."""
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_time or 0)


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def chat(text: str, **body: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **body}

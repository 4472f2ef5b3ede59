"""Robutler plugin ``otel``: OpenTelemetry traces.

A span per request, per LLM try, per tool call and per handoff; the caller's W3C
``traceparent`` continued and passed on to LLM upstreams and to other agents; OTLP export
in batches, flushed at shutdown. Every setting is in ``docs/plugins/otel.md``.
"""

from __future__ import annotations

import asyncio

from robutler_specs import KernelAPI, hookimpl

from .config import OtelConfig, OtelSettings
from .provider import STATE_KEY, Tracing, tracer_provider, tracing, use_tracer_provider
from .skill import OtelSkill, RequestTrace

#: ``plugins: {otel: {...}}`` (validated by ``robutler-kernel check``).
PluginSettings = OtelSettings

__all__ = [
    "OtelConfig",
    "OtelSettings",
    "OtelSkill",
    "PluginSettings",
    "RequestTrace",
    "Tracing",
    "tracer_provider",
    "use_tracer_provider",
]


@hookimpl
def robutler_skills() -> list[type[OtelSkill]]:
    """The otel skill."""
    return [OtelSkill]


@hookimpl
def robutler_startup(kernel: KernelAPI) -> None:
    """Build the tracer provider from ``plugins.otel``."""
    tracing(kernel)


@hookimpl
async def robutler_shutdown(kernel: KernelAPI) -> None:
    """Export what is still queued, then stop the exporter (a provider given with
    :func:`use_tracer_provider` is only flushed: it is its owner's to stop)."""
    found = kernel.state.pop(STATE_KEY, None)
    if not isinstance(found, Tracing):
        return
    # Both block on the exporter's HTTP calls: not on the event loop.
    await asyncio.to_thread(found.provider.shutdown if found.owned else found.provider.force_flush)

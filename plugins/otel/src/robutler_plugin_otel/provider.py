"""The process's tracer provider: one per kernel, in ``kernel.state``.

The plugin never sets OpenTelemetry's global provider: several kernels may share a
process (tests, an app embedding two), and an application that has its own global
provider keeps it. The provider is built from ``plugins.otel`` on first use (start-up, or
the first request of an agent loaded later) and shut down by ``robutler_shutdown``, which
flushes what the batch processor still holds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Tracer

from robutler_specs import KernelAPI

from .config import OtelSettings

#: Where the plugin keeps its :class:`Tracing` in ``kernel.state``.
STATE_KEY = "otel"
PLUGIN = "otel"
SCOPE = "robutler_plugin_otel"


@dataclass
class Tracing:
    """A kernel's provider and tracer; ``owned`` when the plugin built the provider (and
    so shuts it down)."""

    provider: TracerProvider
    tracer: Tracer
    owned: bool = True


def settings_of(raw: Mapping[str, Any] | OtelSettings) -> OtelSettings:
    """``plugins.otel`` validated (``robutler-kernel check`` has already said what is wrong)."""
    return raw if isinstance(raw, OtelSettings) else msgspec.convert(dict(raw), OtelSettings)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def exporter_for(settings: OtelSettings) -> SpanExporter | None:
    """The exporter ``settings`` ask for; ``None`` for ``none``."""
    kind = settings.exporter or os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")[0].strip() or "otlp"
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=traces_url(settings.endpoint) if settings.endpoint else None,
        headers=dict(settings.headers) or None,
        timeout=settings.timeout,
    )


def build(settings: OtelSettings) -> TracerProvider:
    """A provider exporting in batches as ``settings`` say."""
    service = settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or "robutler"
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    exporter = exporter_for(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(
            exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.schedule_delay * 1000,
            max_export_batch_size=settings.max_export_batch_size,
            export_timeout_millis=settings.timeout * 1000,
        ))
    return provider


def tracing(kernel: KernelAPI) -> Tracing:
    """The kernel's :class:`Tracing`, built from ``plugins.otel`` on first use."""
    found = kernel.state.get(STATE_KEY)
    if found is None:
        provider = build(settings_of(kernel.plugin_settings(PLUGIN)))
        found = kernel.state[STATE_KEY] = Tracing(provider, provider.get_tracer(SCOPE))
    assert isinstance(found, Tracing)
    return found


def tracer_provider(kernel: KernelAPI) -> TracerProvider:
    """The provider the kernel's otel skills trace with: add a span processor to it (a
    second exporter, an in-memory one in tests)."""
    return tracing(kernel).provider


def use_tracer_provider(kernel: KernelAPI, provider: TracerProvider) -> None:
    """Trace the kernel's requests with ``provider`` (yours: the plugin does not shut it
    down, it only flushes it at shutdown). Call it before the first request, or any time:
    the skills read it on each request."""
    current = kernel.state.get(STATE_KEY)
    if isinstance(current, Tracing):
        if current.owned:
            current.provider.shutdown()
        current.provider, current.tracer, current.owned = provider, provider.get_tracer(SCOPE), False
    else:
        kernel.state[STATE_KEY] = Tracing(provider, provider.get_tracer(SCOPE), owned=False)


__all__ = [
    "PLUGIN",
    "STATE_KEY",
    "Tracing",
    "build",
    "exporter_for",
    "settings_of",
    "tracer_provider",
    "traces_url",
    "tracing",
    "use_tracer_provider",
]

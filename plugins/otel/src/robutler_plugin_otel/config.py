"""The otel plugin's settings: per agent (``skills: {otel: ...}``) and per process
(``plugins: {otel: ...}``: where spans go)."""

from __future__ import annotations

from typing import Literal

import msgspec


class OtelConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``agents.<agent>.skills.otel``.

    :ivar trust_incoming: continue the caller's trace when its request carries a W3C
        ``traceparent`` (else every request starts a trace of its own: a public agent
        may not want callers choosing its trace ids or sampling).
    :ivar propagate: send ``traceparent`` / ``tracestate`` to LLM upstreams and to the
        agents this agent calls (handoffs, ``ask_agent``).
    :ivar attributes: extra attributes on every request span of this agent.
    """

    trust_incoming: bool = True
    propagate: bool = True
    attributes: dict[str, str] = {}


class OtelSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``plugins.otel``: one exporter for the whole process.

    :ivar exporter: ``otlp`` (OTLP over HTTP/protobuf), ``console`` (spans printed as
        JSON, for a look), or ``none`` (spans made but not sent: add your own processor
        with :func:`~robutler_plugin_otel.tracer_provider`). Unset: the environment's
        ``OTEL_TRACES_EXPORTER``, else ``otlp``.
    :ivar endpoint: the collector's OTLP/HTTP base URL (``http://collector:4318``; spans
        go to ``{endpoint}/v1/traces``, a URL already ending so is kept). Unset: the
        SDK's environment (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
        ``OTEL_EXPORTER_OTLP_ENDPOINT``), else ``http://localhost:4318``.
    :ivar headers: headers sent to the collector (its API key).
    :ivar service_name: ``service.name`` of the spans; unset: ``OTEL_SERVICE_NAME``, else
        ``robutler``.
    :ivar sample_ratio: the share of new traces recorded (0..1); a trace a caller started
        follows the caller's sampling decision.
    :ivar timeout: seconds one export may take.
    :ivar schedule_delay: seconds between two exports of the batch processor.
    :ivar max_queue_size: spans held waiting for export; beyond it new spans are dropped
        (never a request slowed down).
    :ivar max_export_batch_size: spans per export request.
    """

    exporter: Literal["otlp", "console", "none"] | None = None
    endpoint: str | None = None
    headers: dict[str, str] = {}
    service_name: str | None = None
    sample_ratio: float = msgspec.field(default=1.0)
    timeout: float = 10.0
    schedule_delay: float = 5.0
    max_queue_size: int = 2048
    max_export_batch_size: int = 512

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError(f"sample_ratio must be between 0 and 1, not {self.sample_ratio}")
        if self.max_export_batch_size > self.max_queue_size:
            raise ValueError("max_export_batch_size cannot exceed max_queue_size")


__all__ = ["OtelConfig", "OtelSettings"]

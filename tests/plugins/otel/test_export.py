"""OTLP export to a collector on loopback (a small aiohttp server taking ``/v1/traces``
protobuf, decoded with opentelemetry-proto); settings and their errors."""

from __future__ import annotations

import msgspec
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from robutler_kernel.testing import kernel_client
from robutler_plugin_otel.config import OtelSettings
from robutler_plugin_otel.provider import settings_of, traces_url

from .support import TOOLS, chat, kernel_with


class Collector:
    """Receives OTLP/HTTP trace exports."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []

    async def traces(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests.append(message)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def spans(self) -> list[tuple[str, str]]:
        """(service name, span name) of every span received."""
        found = []
        for message in self.requests:
            for resource in message.resource_spans:
                service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
                found.extend((service, span.name) for scope in resource.scope_spans for span in scope.spans)
        return found


async def test_spans_are_exported_with_otlp_and_flushed_at_shutdown() -> None:
    collector = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", collector.traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        kernel = kernel_with(
            {"bot": {"model": "scripted/echo", "tools": TOOLS, "skills": {"otel": {}}}},
            # a delay longer than the test: only the shutdown's flush can send the spans
            settings={"endpoint": f"http://127.0.0.1:{port}", "service_name": "robutler-test",
                      "headers": {"x-collector-key": "secret"}, "schedule_delay": 60},
        )
        async with kernel_client(kernel) as client:
            response = await client.post("/bot/chat/completions", json=chat("call lookup city=Oslo"))
            assert response.status_code == 200
            assert collector.requests == []
        assert sorted(collector.spans()) == sorted([
            ("robutler-test", "invoke_agent bot"), ("robutler-test", "chat echo"),
            ("robutler-test", "execute_tool lookup"), ("robutler-test", "chat echo"),
        ])
        assert collector.headers[0]["x-collector-key"] == "secret"
        assert collector.headers[0]["Content-Type"] == "application/x-protobuf"
    finally:
        await runner.cleanup()


def test_the_traces_url_of_an_endpoint() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"


@pytest.mark.parametrize("raw", [{"sample_ratio": 2}, {"exporter": "jaeger"}, {"endpont": "x"},
                                 {"max_queue_size": 10, "max_export_batch_size": 20}])
def test_bad_settings_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        settings_of(raw)


def test_settings_defaults() -> None:
    settings = settings_of({})
    assert settings == OtelSettings()
    assert settings.sample_ratio == 1.0 and settings.exporter is None

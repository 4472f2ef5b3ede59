"""W3C trace context passed on: to LLM upstreams (each transport of the openai plugin, the
anthropic plugin) and to another kernel through nli (``ask_agent``, a remote handoff)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import robutler_plugin_anthropic as anthropic_plugin
import robutler_plugin_nli as nli
import robutler_plugin_openai as openai_plugin
from robutler_kernel.testing import FakeAnthropic, FakeOpenAI, LiveServer, kernel_client

from .support import CALLER_TRACE, TRACEPARENT, chat, hexid, one, traced


def parent_of(traceparent: str) -> tuple[str, str]:
    """The trace id and parent span id a ``traceparent`` names."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    return trace_id, span_id


@pytest.mark.parametrize("transport", ["direct", "sdk"])
@pytest.mark.parametrize("stream", [False, True])
async def test_each_openai_try_sends_its_own_span_upstream(transport: str, stream: bool) -> None:
    with FakeOpenAI() as fake:
        fake.add_error(503, "busy")  # the first try fails: the retry sends another span
        kernel, exporter = traced({"bot": {
            "model": "openai/gpt-4o-mini", "retry": {"attempts": 2, "initial_delay": 0},
            "skills": {"otel": {}, "openai": {"api_key": "test-key", "base_url": fake.base_url, "transport": transport}},
        }}, [openai_plugin])
        async with kernel_client(kernel) as client:
            response = await client.post("/bot/chat/completions", json=chat("hi", stream=stream),
                                         headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200, response.text
        sent = [r.headers["traceparent"] for r in fake.requests if r.path.endswith("/chat/completions")]
        assert fake.requests[-1].headers["authorization"] == "Bearer test-key"
    spans = exporter.get_finished_spans()
    tries = sorted((s for s in spans if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {})["robutler.llm.attempt"] for s in tries] == [1, 2]
    assert [parent_of(h) for h in sent] == [(CALLER_TRACE, hexid(s.context.span_id)) for s in tries]


async def test_the_anthropic_plugin_sends_the_span_upstream() -> None:
    with FakeAnthropic(api_key="test-key") as fake:
        kernel, exporter = traced({"bot": {
            "model": "anthropic/claude-test",
            "skills": {"otel": {}, "anthropic": {"api_key": "test-key", "base_url": fake.base_url}},
        }}, [anthropic_plugin])
        async with kernel_client(kernel) as client:
            response = await client.post("/bot/chat/completions", json=chat("hi"))
        assert response.status_code == 200, response.text
        sent = fake.requests[-1].headers["traceparent"]
    span = one(exporter.get_finished_spans(), "chat claude-test")
    assert parent_of(sent) == (hexid(span.context.trace_id, 32), hexid(span.context.span_id))


async def test_propagate_false_sends_nothing() -> None:
    with FakeOpenAI() as fake:
        kernel, _ = traced({"bot": {
            "model": "openai/gpt-4o-mini",
            "skills": {"otel": {"propagate": False}, "openai": {"api_key": "k", "base_url": fake.base_url}},
        }}, [openai_plugin])
        async with kernel_client(kernel) as client:
            await client.post("/bot/chat/completions", json=chat("hi"), headers={"traceparent": TRACEPARENT})
        assert "traceparent" not in fake.requests[-1].headers


def callee_kernel(exporter: InMemorySpanExporter) -> Any:
    kernel, _ = traced({"billing": {
        "model": "scripted/answer",
        "skills": {"otel": {}, "scripted": {"scripts": {"answer": [{"content": "Paid.", "finish_reason": "stop"}]}}},
    }}, exporter=exporter)
    return kernel


@pytest.mark.parametrize("stream", [False, True])
async def test_ask_agent_on_another_kernel_continues_the_trace(stream: bool) -> None:
    exporter = InMemorySpanExporter()
    with LiveServer(callee_kernel(exporter)) as server:
        kernel, _ = traced({"front": {
            "model": "scripted/ask",
            "skills": {
                "otel": {},
                "nli": {"allow_hosts": ["127.0.0.1"], "peers": {"b": {"url": f"{server.url}/billing"}}},
                "scripted": {"scripts": {"ask": [
                    {"tool_calls": [{"name": "ask_agent", "arguments": {"agent": "b", "message": "paid?"}}]},
                    {"content": "done"},
                ]}},
            },
        }}, [nli], exporter=exporter)
        async with kernel_client(kernel) as client:
            response = await client.post("/front/chat/completions", json=chat("go", stream=stream))
        assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    tool, callee = one(spans, "execute_tool ask_agent"), one(spans, "invoke_agent billing")
    assert callee.context.trace_id == tool.context.trace_id
    assert callee.parent is not None and callee.parent.span_id == tool.context.span_id
    assert callee.parent.is_remote


async def test_a_remote_handoff_continues_the_trace() -> None:
    exporter = InMemorySpanExporter()
    with LiveServer(callee_kernel(exporter)) as server:
        kernel, _ = traced({"front": {
            "model": "scripted/route",
            "handoffs": [{"agent": f"{server.url}/billing", "name": "billing"}],
            "skills": {
                "otel": {}, "nli": {"allow_hosts": ["127.0.0.1"]},
                "scripted": {"scripts": {"route": [{"tool_calls": [{"name": "transfer_to_billing"}]}]}},
            },
        }}, [nli], exporter=exporter)
        async with kernel_client(kernel) as client:
            response = await client.post("/front/chat/completions", json=chat("go"))
        assert response.status_code == 200, response.text
        assert "Paid." in response.text
    spans = exporter.get_finished_spans()
    handoff, callee = one(spans, f"handoff {server.url}/billing"), one(spans, "invoke_agent billing")
    assert callee.context.trace_id == handoff.context.trace_id
    assert callee.parent is not None and callee.parent.span_id == handoff.context.span_id
    assert (handoff.attributes or {})["robutler.handoff.remote"] is True

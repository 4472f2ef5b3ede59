"""The span tree of requests: a tool call, a retried LLM call, a failed request, a local
handoff, a stream; attributes on each span; the caller's trace continued."""

from __future__ import annotations

import importlib.metadata

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import robutler_plugin_auth as auth
from robutler_kernel.testing import kernel_client

from .support import CALLER_SPAN, CALLER_TRACE, TOOLS, TRACEPARENT, chat, hexid, named, one, traced, tree

ALICE = "alice-key-0123456789abcdefghijklmnop"


def test_the_entry_points_are_discoverable() -> None:
    assert "otel" in [ep.name for ep in importlib.metadata.entry_points(group="robutler.plugins")]
    assert "otel" in [ep.name for ep in importlib.metadata.entry_points(group="robutler.skills")]


async def test_a_request_with_a_tool_call() -> None:
    kernel, exporter = traced({"bot": {
        "model": "scripted/echo", "tools": TOOLS,
        "skills": {"otel": {"attributes": {"team": "weather"}}, "auth": {"api_keys": [{"key": ALICE, "user_id": "alice"}]}},
    }}, [auth])
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=chat("call lookup city=Oslo"),
                                     headers={"Authorization": f"Bearer {ALICE}"})
    assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    assert tree(spans) == [("invoke_agent bot", [
        ("chat echo", []), ("execute_tool lookup", []), ("chat echo", []),
    ])]
    assert len({s.context.trace_id for s in spans}) == 1
    request = one(spans, "invoke_agent bot")
    body = response.json()
    assert request.kind is SpanKind.SERVER
    assert request.status.status_code is StatusCode.UNSET
    attrs = request.attributes or {}
    assert attrs["gen_ai.agent.name"] == "bot"
    assert attrs["robutler.request_id"] == body["id"]
    assert attrs["robutler.caller"] == "alice"
    assert attrs["team"] == "weather"
    assert attrs["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] == body["usage"]["completion_tokens"] > 0
    first, second = named(spans, "chat echo")
    assert first.kind is SpanKind.CLIENT
    assert (first.attributes or {})["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert (second.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    for span, round_ in ((first, 0), (second, 1)):
        a = span.attributes or {}
        assert a["gen_ai.provider.name"] == "scripted"
        assert a["gen_ai.request.model"] == "echo"
        assert a["robutler.llm.attempt"] == 1
        assert a["robutler.llm.round"] == round_
        assert a["gen_ai.usage.input_tokens"] > 0
    tool = one(spans, "execute_tool lookup")
    assert (tool.attributes or {})["gen_ai.tool.name"] == "lookup"
    assert tool.status.status_code is StatusCode.UNSET
    # the request span covers every other span
    assert request.start_time is not None and request.end_time is not None
    assert all(request.start_time <= (s.start_time or 0) and (s.end_time or 0) <= request.end_time for s in spans)


async def test_a_failing_tool_is_an_error_span() -> None:
    kernel, exporter = traced({"bot": {"model": "scripted/echo", "tools": TOOLS, "skills": {"otel": {}}}})
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=chat("call lookup town=Oslo"))
    assert response.status_code == 200
    tool = one(exporter.get_finished_spans(), "execute_tool lookup")
    assert tool.status.status_code is StatusCode.ERROR


async def test_a_retried_llm_call_is_two_tries() -> None:
    kernel, exporter = traced({"bot": {
        "model": ["scripted/broken", "scripted/echo"], "retry": {"attempts": 1, "initial_delay": 0},
        "skills": {"otel": {}, "scripted": {"scripts": {"broken": [{"error": "upstream exploded"}]}}},
    }})
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=chat("hello"))
    assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    assert tree(spans) == [("invoke_agent bot", [("chat broken", []), ("chat echo", [])])]
    failed, ok = one(spans, "chat broken"), one(spans, "chat echo")
    assert (failed.attributes or {})["robutler.llm.attempt"] == 1
    assert (ok.attributes or {})["robutler.llm.attempt"] == 2
    assert failed.status.status_code is StatusCode.ERROR
    assert "upstream exploded" in (failed.status.description or "")
    assert ok.status.status_code is StatusCode.UNSET
    assert (failed.end_time or 0) <= (ok.start_time or 0)
    assert one(spans, "invoke_agent bot").status.status_code is StatusCode.UNSET


async def test_a_failed_request_is_an_error_span() -> None:
    kernel, exporter = traced({"bot": {
        "model": "scripted/broken", "retry": {"attempts": 1},
        "skills": {"otel": {}, "scripted": {"scripts": {"broken": [{"error": "upstream exploded"}]}}},
    }})
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=chat("hello"))
    assert response.status_code == 502
    spans = exporter.get_finished_spans()
    request = one(spans, "invoke_agent bot")
    assert request.status.status_code is StatusCode.ERROR
    assert "upstream exploded" in (request.status.description or "")
    assert (request.attributes or {})["http.response.status_code"] == 502
    assert one(spans, "chat broken").status.status_code is StatusCode.ERROR


async def test_a_refused_request_is_traced_too() -> None:
    kernel, exporter = traced({"bot": {"model": "scripted/echo",
                                       "skills": {"otel": {}, "auth": {"api_keys": [{"key": ALICE, "user_id": "alice"}]}}}},
                              [auth])
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=chat("hello"))
    assert response.status_code == 401
    request = one(exporter.get_finished_spans(), "invoke_agent bot")
    assert request.status.status_code is StatusCode.ERROR
    assert (request.attributes or {})["http.response.status_code"] == 401


HANDOFF_AGENTS = {
    "front": {
        "model": "scripted/route", "handoffs": ["billing"],
        "skills": {"otel": {}, "scripted": {"scripts": {"route": [{"tool_calls": [{"name": "transfer_to_billing"}]}]}}},
    },
    "billing": {
        "description": "Invoices", "model": "scripted/answer",
        "skills": {"otel": {}, "scripted": {"scripts": {"answer": [{"content": "Invoice 42 was paid."}]}}},
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_local_handoff_is_a_child_trace(stream: bool) -> None:
    kernel, exporter = traced(HANDOFF_AGENTS)
    async with kernel_client(kernel) as client:
        response = await client.post("/front/chat/completions", json=chat("my invoice?", stream=stream))
    assert response.status_code == 200
    assert "Invoice" in response.text
    spans = exporter.get_finished_spans()
    assert tree(spans) == [("invoke_agent front", [
        ("chat route", []),
        ("handoff billing", [("invoke_agent billing", [("chat answer", [])])]),
    ])]
    assert len({s.context.trace_id for s in spans}) == 1
    front, handoff = one(spans, "invoke_agent front"), one(spans, "handoff billing")
    assert (front.attributes or {})["robutler.answered_by"] == "billing"
    assert (handoff.attributes or {})["robutler.handoff.target"] == "billing"
    assert (one(spans, "invoke_agent billing").attributes or {})["robutler.chain"] == ("front",)


async def test_a_streamed_request() -> None:
    kernel, exporter = traced({"bot": {"model": "scripted/echo", "tools": TOOLS, "skills": {"otel": {}}}})
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=chat("call lookup city=Oslo", stream=True))
    assert response.status_code == 200
    assert "data: [DONE]" in response.text
    spans = exporter.get_finished_spans()
    assert tree(spans) == [("invoke_agent bot", [
        ("chat echo", []), ("execute_tool lookup", []), ("chat echo", []),
    ])]
    assert (one(spans, "invoke_agent bot").attributes or {})["robutler.stream"] is True
    assert all((s.attributes or {})["robutler.stream"] is True for s in named(spans, "chat echo"))
    assert (one(spans, "invoke_agent bot").attributes or {})["gen_ai.usage.output_tokens"] > 0


async def test_the_callers_traceparent_continues_its_trace() -> None:
    kernel, exporter = traced({"bot": {"model": "scripted/echo", "skills": {"otel": {}}}})
    async with kernel_client(kernel) as client:
        await client.post("/bot/chat/completions", json=chat("hi"),
                          headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
    request = one(exporter.get_finished_spans(), "invoke_agent bot")
    assert hexid(request.context.trace_id, 32) == CALLER_TRACE
    assert request.parent is not None and hexid(request.parent.span_id) == CALLER_SPAN
    assert request.parent.is_remote
    assert request.context.trace_state.get("vendor") == "1"


async def test_an_agent_that_does_not_trust_callers_starts_its_own_trace() -> None:
    kernel, exporter = traced({"bot": {"model": "scripted/echo", "skills": {"otel": {"trust_incoming": False}}}})
    async with kernel_client(kernel) as client:
        await client.post("/bot/chat/completions", json=chat("hi"), headers={"traceparent": TRACEPARENT})
    request = one(exporter.get_finished_spans(), "invoke_agent bot")
    assert hexid(request.context.trace_id, 32) != CALLER_TRACE
    assert request.parent is None


async def test_a_malformed_traceparent_starts_a_new_trace() -> None:
    kernel, exporter = traced({"bot": {"model": "scripted/echo", "skills": {"otel": {}}}})
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=chat("hi"), headers={"traceparent": "garbage"})
    assert response.status_code == 200
    assert one(exporter.get_finished_spans(), "invoke_agent bot").parent is None

"""Every provider fault x every transport x {JSON, stream}: the status, the error code and
type, and for streams the last events (an ``error`` event and ``[DONE]``, never a
``finish_reason``), through the kernel over a real socket.

The faults and their expected outcomes are data in the test kit
(:mod:`robutler_kernel.testing.faults`), so a soak suite runs the same table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

import robutler_plugin_anthropic
import robutler_plugin_openai
from robutler_kernel.testing import FakeAnthropic, FakeOpenAI, LiveServer, make_kernel
from robutler_kernel.testing.faults import (
    FAULTS,
    TRANSPORTS,
    Fault,
    agent_config,
    json_problems,
    refused_url,
    stream_problems,
)
from robutler_specs import RequestContext, Skill, UsageRecord, hookimpl


class UsageLog(Skill):
    """Keeps each finished request's usage records, by request id."""

    name = "usage_log"
    records: ClassVar[dict[str, list[UsageRecord]]] = {}

    @hookimpl
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        UsageLog.records[ctx.request_id] = list(ctx.usage)


def usage_of(response: httpx.Response) -> list[UsageRecord]:
    """The usage records of the request ``response`` answered (finalize_connection may run
    just after the client has its last byte)."""
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while request_id not in UsageLog.records and time.monotonic() < deadline:
        time.sleep(0.01)
    return UsageLog.records[request_id]


class Rig:
    """One fake upstream per API, and one server whose agents reach them (one agent per
    transport, and one per transport pointed at a closed port)."""

    def __init__(self) -> None:
        self.fakes = {"openai": FakeOpenAI(), "anthropic": FakeAnthropic()}
        for fake in self.fakes.values():
            fake.__enter__()
        closed = {api: refused_url(api) for api in self.fakes}
        agents = {}
        for name, (provider, skill) in TRANSPORTS.items():
            agents[name] = agent_config(provider, self.fakes[provider].base_url, **skill)
            agents[f"{name}-refused"] = agent_config(provider, closed[provider], **skill)
        for agent in agents.values():
            agent["skills"]["usage_log"] = None
        self.server = LiveServer(make_kernel(agents, plugins=[robutler_plugin_openai,
                                                              robutler_plugin_anthropic, UsageLog]))
        self.url = self.server.__enter__().url

    def close(self) -> None:
        self.server.__exit__(None, None, None)
        for fake in self.fakes.values():
            fake.__exit__(None, None, None)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    rig = Rig()
    try:
        yield rig
    finally:
        rig.close()


def ask(rig: Rig, transport: str, item: Fault, *, stream: bool) -> httpx.Response:
    provider = TRANSPORTS[transport][0]
    fake = rig.fakes[provider]
    fake.reset()
    agent = transport
    if item.refused:
        agent += "-refused"
    else:
        item.inject(fake)
    body = {"messages": [{"role": "user", "content": "hello"}], "stream": stream}
    return httpx.post(f"{rig.url}/{agent}/chat/completions", json=body, timeout=15)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("item", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(rig: Rig, item: Fault, transport: str, stream: bool) -> None:
    response = ask(rig, transport, item, stream=stream)
    if stream:
        problems = stream_problems(item, response.status_code, response.headers, response.text)
    else:
        problems = json_problems(item, response.status_code, response.headers, response.json())
    assert not problems, f"{item.name} ({item.what}) on {transport}: {problems}\n{response.text[:600]}"


CUT_SHORT = [f for f in FAULTS if f.mid_stream]


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("item", CUT_SHORT, ids=[f.name for f in CUT_SHORT])
def test_a_stream_cut_short_is_metered_as_cut_short(rig: Rig, item: Fault, transport: str) -> None:
    response = ask(rig, transport, item, stream=True)
    assert response.status_code == 200
    [record] = [r for r in usage_of(response) if r.kind == "llm"]
    # One failed try, billed for what was delivered (estimated: the usage chunk never came).
    assert record.ok is False and record.error is not None
    assert record.error.startswith("stream ended early"), record.error
    assert record.completion_tokens > 0 and record.estimated


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_a_whole_stream_is_one_successful_try(rig: Rig, transport: str) -> None:
    rig.fakes[TRANSPORTS[transport][0]].reset()
    body = {"messages": [{"role": "user", "content": "hello"}], "stream": True}
    response = httpx.post(f"{rig.url}/{transport}/chat/completions", json=body, timeout=15)
    [record] = [r for r in usage_of(response) if r.kind == "llm"]
    assert record.ok and record.error is None and not record.estimated
    assert '"finish_reason":"stop"' in response.text and "error" not in response.text

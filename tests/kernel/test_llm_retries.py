"""Retries, fallback, provider timeouts and model choice, end to end: the official client
against a served kernel whose openai skill talks to a fake upstream over loopback."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

import robutler_plugin_openai
import robutler_plugin_scripted
from robutler_kernel.testing import FakeOpenAI, LiveServer, closed_port, make_kernel
from robutler_specs import RequestContext, Skill, UsageRecord, hookimpl

FAST = {"initial_delay": 0, "jitter": 0}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    """The fake upstream (the test kit's fixture)."""
    return fake_openai


def closed_port_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/v1"


def agent(base_url: str, **fields: Any) -> dict[str, Any]:
    timeout = fields.pop("timeout", 5)
    return {
        "model": "openai/gpt-a",
        "retry": {**FAST, "attempts": 2},
        "skills": {"openai": {"api_key": "k", "base_url": base_url, "timeout": timeout}},
        **fields,
    }


class Meter(Skill):
    """Keeps the usage records of every finished request."""

    name = "meter"
    records: ClassVar[list[list[UsageRecord]]] = []

    @hookimpl
    def finalize_connection(self, ctx: RequestContext) -> None:
        Meter.records.append(list(ctx.usage))


class Served:
    """A served kernel, the official client on it, and the usage records of its requests."""

    def __init__(self, agents: dict[str, Any]) -> None:
        Meter.records.clear()
        self.records = Meter.records
        agents = {name: {**spec, "skills": {**spec["skills"], "meter": None}} for name, spec in agents.items()}
        kernel = make_kernel(agents, plugins=[robutler_plugin_openai, robutler_plugin_scripted, Meter])
        self.server = LiveServer(kernel)

    def __enter__(self) -> Served:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def client(self, agent: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.server.url}/{agent}", api_key="x", max_retries=0, timeout=20)

    def last_tries(self) -> list[tuple[str, int, bool]]:
        return [(r.name, r.attempt, r.ok) for r in self.records[-1] if r.kind == "llm"]


def tries_counted(outcome: str) -> float:
    labels = {"agent": "bot", "model": "openai/gpt-a", "outcome": outcome}
    return REGISTRY.get_sample_value("robutler_llm_calls_total", labels) or 0.0


def test_a_5xx_is_retried_and_every_try_is_recorded(fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    fake.add_error(503, "overloaded")
    fake.add_reply("second time lucky")
    failed_before, ok_before = tries_counted("failed"), tries_counted("ok")
    with Served({"bot": agent(fake.base_url)}) as served, caplog.at_level(logging.WARNING, "robutler.llm"):
        completion = served.client("bot").chat.completions.create(model="bot", messages=HI)
    assert (tries_counted("failed") - failed_before, tries_counted("ok") - ok_before) == (1, 1)
    assert completion.choices[0].message.content == "second time lucky"
    assert len(fake.requests) == 2
    assert served.last_tries() == [("openai/gpt-a", 1, False), ("openai/gpt-a", 2, True)]
    failed = served.records[-1][0]
    assert "overloaded" in failed.error and failed.prompt_tokens == 0
    assert any("try 1 (openai/gpt-a) failed" in r.getMessage() for r in caplog.records)


def test_the_fallback_list_is_walked_in_order(fake: FakeOpenAI) -> None:
    fake.add_error(500, "down", times=2)
    fake.add_reply("from b")
    spec = agent(fake.base_url, model=["openai/gpt-a", "openai/gpt-b"])
    with Served({"bot": spec}) as served:
        completion = served.client("bot").chat.completions.create(model="bot", messages=HI)
    assert completion.choices[0].message.content == "from b"
    assert [r.json["model"] for r in fake.requests] == ["gpt-a", "gpt-a", "gpt-b"]
    assert served.last_tries() == [("openai/gpt-a", 1, False), ("openai/gpt-a", 2, False), ("openai/gpt-b", 3, True)]


def test_a_provider_that_is_down_falls_through_to_another_provider() -> None:
    spec = agent(closed_port_url(), model=["openai/gpt-a", "scripted/echo"])
    with Served({"bot": spec}) as served:
        completion = served.client("bot").chat.completions.create(model="bot", messages=HI)
        streamed = served.client("bot").chat.completions.create(model="bot", messages=HI, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert completion.choices[0].message.content == text == "You said: hi"
    assert served.last_tries() == [("openai/gpt-a", 1, False), ("openai/gpt-a", 2, False), ("scripted/echo", 3, True)]


def test_when_every_try_fails_the_last_error_says_what_was_tried(fake: FakeOpenAI) -> None:
    fake.add_error(500, "still down", times=4)
    spec = agent(fake.base_url, model=["openai/gpt-a", "openai/gpt-b"])
    with Served({"bot": spec}) as served, pytest.raises(openai.APIStatusError) as caught:
        served.client("bot").chat.completions.create(model="bot", messages=HI)
    assert caught.value.status_code == 502
    assert "still down" in caught.value.message
    assert "after 4 tries: openai/gpt-a x2, openai/gpt-b x2" in caught.value.message
    assert len(fake.requests) == 4


@pytest.mark.parametrize("status", [400, 401])
def test_errors_another_try_cannot_fix_are_not_retried(fake: FakeOpenAI, status: int) -> None:
    fake.add_error(status, "no", times=2)
    spec = agent(fake.base_url, model=["openai/gpt-a", "scripted/echo"])
    with Served({"bot": spec}) as served, pytest.raises(openai.APIStatusError) as caught:
        served.client("bot").chat.completions.create(model="bot", messages=HI)
    assert caught.value.status_code == (400 if status == 400 else 502)
    assert len(fake.requests) == 1


def test_retry_after_is_respected(fake: FakeOpenAI) -> None:
    fake.add_error(429, "slow down", retry_after=0.4)
    fake.add_reply("patience pays")
    with Served({"bot": agent(fake.base_url)}) as served:
        started = time.monotonic()
        completion = served.client("bot").chat.completions.create(model="bot", messages=HI)
        waited = time.monotonic() - started
    assert completion.choices[0].message.content == "patience pays"
    assert waited >= 0.4  # the backoff alone would be 0 here (initial_delay: 0)


def test_a_retry_after_too_long_to_wait_for_is_passed_on(fake: FakeOpenAI) -> None:
    fake.add_error(429, "come back in a minute", retry_after=60)
    with Served({"bot": agent(fake.base_url)}) as served:
        response = httpx.post(f"{served.server.url}/bot/chat/completions", json={"messages": HI}, timeout=20)
    assert response.status_code == 429 and response.headers["retry-after"] == "60"
    assert "come back in a minute" in response.json()["error"]["message"]
    assert len(fake.requests) == 1


def test_a_stream_is_retried_before_its_first_token(fake: FakeOpenAI) -> None:
    fake.add_error(502, "bad gateway")
    fake.add_reply("streamed once")
    with Served({"bot": agent(fake.base_url)}) as served:
        stream = served.client("bot").chat.completions.create(model="bot", messages=HI, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "streamed once"
    assert served.last_tries() == [("openai/gpt-a", 1, False), ("openai/gpt-a", 2, True)]


def test_a_stream_that_fails_after_a_token_is_not_retried(fake: FakeOpenAI) -> None:
    fake.add_reply("one two three four", hang_after=2)
    fake.add_reply("never asked for")
    spec = agent(fake.base_url, timeout=0.5)
    with Served({"bot": spec}) as served:
        with httpx.stream("POST", f"{served.server.url}/bot/chat/completions",
                          json={"messages": HI, "stream": True}, timeout=20) as response:
            body = response.read().decode()
        tries = served.last_tries()
        record = served.records[-1][0]
    assert response.status_code == 200
    assert '"content":"one "' in body
    assert '"error"' in body and "openai" in body and body.endswith("data: [DONE]\n\n")
    assert len(fake.requests) == 1
    assert tries == [("openai/gpt-a", 1, False)]
    assert record.error.startswith("stream ended early") and record.completion_tokens > 0


def test_a_provider_timeout_is_a_504_naming_the_provider(fake: FakeOpenAI) -> None:
    fake.add_reply("too late", delay=3, times=2)
    spec = agent(fake.base_url, timeout=0.3, retry={**FAST, "attempts": 1})
    with Served({"bot": spec}) as served, pytest.raises(openai.APIStatusError) as caught:
        served.client("bot").chat.completions.create(model="bot", messages=HI)
    assert caught.value.status_code == 504
    assert "'openai'" in caught.value.message and "0.3s" in caught.value.message


def test_a_timed_out_try_is_retried(fake: FakeOpenAI) -> None:
    fake.add_reply("too late", delay=3)
    fake.add_reply("in time")
    # 1 s: the good try must fit in it on a busy machine too; the bad one takes 3 s.
    with Served({"bot": agent(fake.base_url, timeout=1.0)}) as served:
        completion = served.client("bot").chat.completions.create(model="bot", messages=HI)
        stream_fake = fake
        stream_fake.add_reply("too late", delay=3)
        stream_fake.add_reply("streamed in time")
        stream = served.client("bot").chat.completions.create(model="bot", messages=HI, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert completion.choices[0].message.content == "in time"
    assert text == "streamed in time"


# -- choosing a model --------------------------------------------------------------------


def test_a_request_may_pick_an_allowed_model(fake: FakeOpenAI) -> None:
    spec = agent(fake.base_url, allowed_models=["openai/gpt-c", "scripted/echo"])
    with Served({"bot": spec}) as served:
        client = served.client("bot")
        client.chat.completions.create(model="openai/gpt-c", messages=HI)
        client.chat.completions.create(model="bot", messages=HI)
        client.chat.completions.create(model="openai/gpt-a", messages=HI)
        echo = client.chat.completions.create(model="scripted/echo", messages=HI)
        info = httpx.get(f"{served.server.url}/bot", timeout=10).json()
    assert [r.json["model"] for r in fake.requests] == ["gpt-c", "gpt-a", "gpt-a"]
    assert echo.choices[0].message.content == "You said: hi"
    assert info["models"] == ["openai/gpt-a", "openai/gpt-c", "scripted/echo"]
    assert info["allowed_models"] == ["openai/gpt-c", "scripted/echo"]


def test_a_model_the_agent_does_not_allow_is_a_400_naming_the_allowed_ones(fake: FakeOpenAI) -> None:
    spec = agent(fake.base_url, allowed_models=["openai/gpt-c"])
    with Served({"bot": spec}) as served, pytest.raises(openai.BadRequestError) as caught:
        served.client("bot").chat.completions.create(model="openai/gpt-5-ultra", messages=HI)
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "model" and error["code"] == "model_not_allowed"
    assert "openai/gpt-a, openai/gpt-c" in error["message"] and "'bot'" in error["message"]
    assert fake.requests == []


def test_a_stream_that_stalls_before_its_first_token_is_retried(fake: FakeOpenAI) -> None:
    fake.add_reply("never sent", hang_after=0)
    fake.add_reply("the second try")
    with Served({"bot": agent(fake.base_url, timeout=1.0)}) as served:
        stream = served.client("bot").chat.completions.create(model="bot", messages=HI, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        tries = served.last_tries()
    assert text == "the second try"
    assert tries == [("openai/gpt-a", 1, False), ("openai/gpt-a", 2, True)]
    assert "1s" in (served.records[-1][0].error or "")


def test_library_callers_pick_a_model_the_same_way(fake: FakeOpenAI) -> None:
    import asyncio

    async def body() -> None:
        kernel = make_kernel({"bot": agent(fake.base_url, allowed_models=["scripted/echo"])},
                             plugins=[robutler_plugin_openai, robutler_plugin_scripted])
        await kernel.startup()
        try:
            bot = kernel.agent("bot")
            echo = await bot.run(HI, model="scripted/echo")
            assert echo.choices[0].message.content == "You said: hi"
            with pytest.raises(Exception, match="does not allow model 'openai/gpt-z'"):
                await bot.run(HI, model="openai/gpt-z")
        finally:
            await kernel.shutdown()
    asyncio.run(body())
    assert fake.requests == []


class Gate(Skill):
    """Sees every try in ``before_llm_call``; refuses models listed in ``refused``."""

    name = "gate"
    seen: ClassVar[list[tuple[str, int]]] = []
    refused: ClassVar[set[str]] = set()

    @hookimpl
    def before_llm_call(self, call: Any) -> None:
        Gate.seen.append((call.model, call.attempt))
        if call.model in Gate.refused:
            from robutler_specs import PaymentRequired

            raise PaymentRequired(f"{call.model} costs more than this request may spend")


def test_before_llm_call_sees_every_try_and_may_refuse_a_fallback(fake: FakeOpenAI) -> None:
    Gate.seen.clear()
    Gate.refused = {"openai/gpt-dear"}
    fake.add_error(503, "down", times=2)
    spec = agent(fake.base_url, model=["openai/gpt-a", "openai/gpt-dear"])
    spec["skills"] = {**spec["skills"], "gate": None}
    kernel = make_kernel({"bot": spec}, plugins=[robutler_plugin_openai, Gate])
    with LiveServer(kernel) as server:
        client = openai.OpenAI(base_url=f"{server.url}/bot", api_key="x", max_retries=0, timeout=20)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="bot", messages=HI)
    assert caught.value.status_code == 402 and "gpt-dear costs more" in caught.value.message
    assert Gate.seen == [("openai/gpt-a", 1), ("openai/gpt-a", 2), ("openai/gpt-dear", 3)]
    assert len(fake.requests) == 2  # the refused model was never called


def test_a_model_that_keeps_failing_is_tried_last_for_a_while() -> None:
    spec = agent(closed_port_url(), model=["openai/gpt-a", "scripted/echo"],
                 retry={**FAST, "attempts": 2, "breaker_failures": 2, "breaker_cooldown": 60})
    with Served({"bot": spec}) as served:
        client = served.client("bot")
        first = client.chat.completions.create(model="bot", messages=HI)
        first_tries = served.last_tries()
        second = client.chat.completions.create(model="bot", messages=HI)
        second_tries = served.last_tries()
        info = httpx.get(f"{served.server.url}/bot", timeout=10).json()
        health = httpx.get(f"{served.server.url}/health/detailed", timeout=10)
    assert health.status_code == 200  # the other model answers: the server is healthy
    assert set(health.json()["agents"]["bot"]["open_models"]) == {"openai/gpt-a"}
    assert first.choices[0].message.content == second.choices[0].message.content == "You said: hi"
    assert first_tries == [("openai/gpt-a", 1, False), ("openai/gpt-a", 2, False), ("scripted/echo", 3, True)]
    assert second_tries == [("scripted/echo", 1, True)]  # the failing model is not even tried first
    assert set(info["open_models"]) == {"openai/gpt-a"} and 0 < info["open_models"]["openai/gpt-a"] <= 60

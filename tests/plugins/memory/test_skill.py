"""The short_term_memory skill through the kernel's HTTP API, on both backends."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Iterator
from typing import Any

import pytest

import robutler_plugin_memory as memory
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import HookRecorder, kernel_client, make_kernel
from robutler_plugin_memory.redis_store import redact
from robutler_specs import ConfigError, Message, RequestContext, Skill, hookimpl

from .helpers import (
    CLOSED_REDIS_URL,
    REDIS_URL,
    HeaderAuth,
    Tools,
    agent,
    answer,
    chat,
    kernel,
    memory_skill,
    roles,
    seen_by_model,
)


@pytest.fixture(params=["memory", "redis"])
def stm_config(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The skill config of each backend (Redis under a key prefix of this test)."""
    if request.param == "memory":
        yield {"backend": "memory"}
    else:
        yield {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": request.getfixturevalue("stm_prefix")}


async def stored(k: Any, key: str, name: str = "bot") -> list[Message]:
    skill = memory_skill(k, name)
    return await skill.store.load(skill.config.key_prefix + key)


def test_the_entry_point_is_discoverable() -> None:
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert found.get("memory") == "robutler_plugin_memory"
    assert memory.robutler_skills() == [memory.ShortTermMemory]


# -- history in, turn out -------------------------------------------------------------------


async def test_history_goes_after_the_system_prompt_and_before_the_new_message(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    async with kernel_client(k) as client:
        assert answer(await chat(client, "my name is Ada", conversation="c1")) == "You said: my name is Ada"
        assert answer(await chat(client, "what is my name?", conversation="c1")) == "You said: what is my name?"
        call = recorder.of("before_llm_call")[-1].kwargs["call"]
        assert call.messages[0].role == "system" and call.messages[0].text() == "You are a test agent."
        assert seen_by_model(recorder) == [
            ("user", "my name is Ada"),
            ("assistant", "You said: my name is Ada"),
            ("user", "what is my name?"),
        ]
        assert roles(await stored(k, "bot:c:anon:c1")) == ["user", "assistant", "user", "assistant"]


async def test_the_clients_own_system_message_stays_first_and_is_not_stored(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    async with kernel_client(k) as client:
        await chat(client, "one", conversation="c")
        system = {"role": "system", "content": "be brief"}
        await chat(client, messages=[system, {"role": "user", "content": "two"}], conversation="c")
        call = recorder.of("before_llm_call")[-1].kwargs["call"]
        assert [(m.role, m.text()) for m in call.messages] == [
            ("system", "You are a test agent."),
            ("system", "be brief"),
            ("user", "one"),
            ("assistant", "You said: one"),
            ("user", "two"),
        ]
        assert "system" not in roles(await stored(k, "bot:c:anon:c"))


async def test_the_v1_route_and_streams_are_remembered(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    async with kernel_client(k) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "bot", "stream": True, "messages": [{"role": "user", "content": "streamed hello"}]},
            headers={"X-Conversation-Id": "s"},
        )
        assert response.status_code == 200 and response.text.rstrip().endswith("data: [DONE]")
        answer(await chat(client, "next", conversation="s"))
        assert seen_by_model(recorder)[:2] == [("user", "streamed hello"), ("assistant", "You said: streamed hello")]


async def test_a_streamed_tool_turn_is_stored_like_a_json_one(stm_config: dict[str, Any]) -> None:
    k = kernel(memory_config=stm_config)
    async with kernel_client(k) as client:
        response = await chat(client, "call lookup order=B2", conversation="st", stream=True)
        assert response.status_code == 200 and response.text.rstrip().endswith("data: [DONE]")
        history = await stored(k, "bot:c:anon:st")
        assert roles(history) == ["user", "assistant", "tool", "assistant"]
        assert history[-1].text() == "Tool lookup returned: order B2 shipped"


async def test_a_failed_request_stores_nothing(stm_config: dict[str, Any]) -> None:
    scripts = {"flaky": [{"content": "fine"}, {"error": "upstream exploded"}]}
    k = kernel(memory_config=stm_config, model="scripted/flaky", scripts=scripts)
    async with kernel_client(k) as client:
        assert answer(await chat(client, "first", conversation="f")) == "fine"
        failed = await chat(client, "second", conversation="f")
        assert failed.status_code == 502
        assert [m.text() for m in await stored(k, "bot:c:anon:f")] == ["first", "fine"]
        # The failed turn left no trace: the next request replays it (turn 1 again).
        assert (await chat(client, "second again", conversation="f")).status_code == 502


async def test_a_refused_request_stores_nothing(stm_config: dict[str, Any]) -> None:
    k = kernel(memory_config=stm_config)
    async with kernel_client(k) as client:
        bad = await chat(client, "hi", conversation="r", tools=[{"type": "function", "function": {"name": "lookup"}}])
        assert bad.status_code == 400  # a client tool clashing with an agent tool
        assert await stored(k, "bot:c:anon:r") == []


# -- whose conversation ---------------------------------------------------------------------


async def test_two_users_never_see_each_others_history_under_concurrency(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    users = [f"user{i}" for i in range(25)]
    async with kernel_client(k) as client:
        for turn in range(3):
            # Everyone at once, on the same agent and the same conversation id.
            responses = await asyncio.gather(
                *(chat(client, f"{u} says {turn}", as_user=u, conversation="same-id") for u in users)
            )
            assert all(r.status_code == 200 for r in responses)
        for call in recorder.of("before_llm_call"):
            ctx: RequestContext = call.kwargs["ctx"]
            me = ctx.identity.user_id
            texts = [m.text() for m in call.kwargs["call"].messages if m.role != "system"]
            assert texts and all(t.startswith(me + " says") or t.startswith(f"You said: {me} says") for t in texts), texts
        for u in users:
            history = await stored(k, f"bot:c:u={u}:same-id")
            assert [m.text() for m in history if m.role == "user"] == [f"{u} says {t}" for t in range(3)]


async def test_the_identity_or_the_user_field_keys_a_conversation_without_the_header(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    async with kernel_client(k) as client:
        await chat(client, "from alice", as_user="alice")
        await chat(client, "from bob's field", user="bob")
        await chat(client, "alice again", as_user="alice")
        assert seen_by_model(recorder)[0] == ("user", "from alice")
        await chat(client, "bob again", user="bob")
        assert seen_by_model(recorder)[0] == ("user", "from bob's field")
        # A client claiming user=alice does not get the authenticated alice's conversation.
        await chat(client, "impostor", user="alice")
        assert seen_by_model(recorder) == [("user", "impostor")]


async def test_an_anonymous_request_without_a_conversation_is_stateless(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    async with kernel_client(k) as client:
        await chat(client, "one")
        await chat(client, "two")
        assert seen_by_model(recorder) == [("user", "two")]
    if stm_config["backend"] == "memory":
        assert len(memory_skill(k).store) == 0  # type: ignore[arg-type]


async def test_agents_do_not_share_conversations(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel({"a": agent(stm_config), "b": agent(stm_config)}, recorder=recorder)
    async with kernel_client(k) as client:
        await chat(client, "to a", agent_name="a", conversation="x")
        await chat(client, "to b", agent_name="b", conversation="x")
        assert seen_by_model(recorder) == [("user", "to b")]


async def test_a_bad_conversation_id_is_a_400() -> None:
    k = kernel()
    async with kernel_client(k) as client:
        response = await chat(client, "hi", conversation="x" * 300)
        assert response.status_code == 400
        error = response.json()["error"]
        assert "X-Conversation-Id" in error["message"] and error["param"] == "X-Conversation-Id"


# -- tool calls stay paired -----------------------------------------------------------------


async def test_tool_calls_and_results_are_stored_in_order_and_replayed(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    async with kernel_client(k) as client:
        assert answer(await chat(client, "call lookup order=A1", conversation="t")) == "Tool lookup returned: order A1 shipped"
        history = await stored(k, "bot:c:anon:t")
        assert roles(history) == ["user", "assistant", "tool", "assistant"]
        call_id = (history[1].tool_calls or [])[0].id
        assert history[2].tool_call_id == call_id and history[2].text() == "order A1 shipped"
        await chat(client, "thanks", conversation="t")
        assert [r for r, _ in seen_by_model(recorder)] == ["user", "assistant", "tool", "assistant", "user"]


async def test_a_failing_tool_is_stored_as_the_error_the_model_saw(stm_config: dict[str, Any]) -> None:
    k = kernel(memory_config=stm_config)
    async with kernel_client(k) as client:
        answer(await chat(client, "call explode", conversation="e"))
        history = await stored(k, "bot:c:anon:e")
        assert roles(history) == ["user", "assistant", "tool", "assistant"]
        assert "boom" in history[2].text()


async def test_a_call_to_an_unknown_tool_is_left_out(stm_config: dict[str, Any]) -> None:
    """The kernel answers it without tool hooks; storing the call alone would break the pairs."""
    scripts = {"confused": [{"tool_calls": [{"name": "no_such_tool"}]}, {"content": "sorry"}]}
    k = kernel(memory_config=stm_config, model="scripted/confused", scripts=scripts)
    async with kernel_client(k) as client:
        assert answer(await chat(client, "hi", conversation="u")) == "sorry"
        assert [(m.role, m.text()) for m in await stored(k, "bot:c:anon:u")] == [("user", "hi"), ("assistant", "sorry")]


async def test_max_tool_rounds_stop_leaves_no_unanswered_call(stm_config: dict[str, Any]) -> None:
    scripts = {"loop": {"turns": [{"tool_calls": [{"name": "lookup", "arguments": {"order": "L"}}]}], "repeat": True}}
    k = kernel(memory_config=stm_config, model="scripted/loop", scripts=scripts, max_tool_rounds=1)
    async with kernel_client(k) as client:
        response = await chat(client, "go", conversation="m")
        assert response.json()["choices"][0]["finish_reason"] == "length"
        history = await stored(k, "bot:c:anon:m")
        assert roles(history) == ["user", "assistant", "tool", "assistant"]
        assert "max_tool_rounds" in history[-1].text()
        calls = [c.id for m in history for c in m.tool_calls or ()]
        results = [m.tool_call_id for m in history if m.role == "tool"]
        assert calls == results


async def test_a_handoff_is_stored_with_its_result_and_the_final_answer(stm_config: dict[str, Any]) -> None:
    k = kernel(memory_config=stm_config)
    async with kernel_client(k) as client:
        text = answer(await chat(client, "call escalate reason=refund", conversation="h"))
        assert text == "A human will follow up: refund"
        history = await stored(k, "bot:c:anon:h")
        assert roles(history) == ["user", "assistant", "tool", "assistant"]
        assert history[-1].text() == text


async def test_client_tool_calls_wait_for_the_clients_results_in_the_next_request(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    clock = {"type": "function", "function": {"name": "local_time", "parameters": {"type": "object", "properties": {}}}}
    async with kernel_client(k) as client:
        first = await chat(client, "call local_time", conversation="ct", tools=[clock])
        choice = first.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call_id = choice["message"]["tool_calls"][0]["id"]
        assert roles(await stored(k, "bot:c:anon:ct")) == ["user", "assistant"]
        # The client sends only its result: memory supplies the call it answers.
        second = await chat(client, conversation="ct", tools=[clock],
                            messages=[{"role": "tool", "tool_call_id": call_id, "content": "12:00"}])
        assert answer(second) == "Tool local_time returned: 12:00"
        assert seen_by_model(recorder) == [("user", "call local_time"), ("assistant", ""), ("tool", "12:00")]
        assert roles(await stored(k, "bot:c:anon:ct")) == ["user", "assistant", "tool", "assistant"]
        # A pending call the client never answers is not sent to the model again.
        await chat(client, "call local_time", conversation="ct2", tools=[clock])
        await chat(client, "never mind", conversation="ct2", tools=[clock])
        assert seen_by_model(recorder) == [("user", "call local_time"), ("user", "never mind")]


# -- the client's own history ----------------------------------------------------------------


async def test_a_client_sending_its_own_history_gets_no_duplicate_and_replaces_the_stored_one(
    stm_config: dict[str, Any],
) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config=stm_config)
    async with kernel_client(k) as client:
        await chat(client, "one", conversation="o")
        full = [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "You said: one"},
            {"role": "user", "content": "two"},
        ]
        answer(await chat(client, messages=full, conversation="o"))
        assert seen_by_model(recorder) == [(m["role"], m["content"]) for m in full]  # nothing prepended
        assert [m.text() for m in await stored(k, "bot:c:anon:o")] == ["one", "You said: one", "two", "You said: two"]
        # ... and a client that switches back to single messages continues from it.
        await chat(client, "three", conversation="o")
        assert [t for _, t in seen_by_model(recorder)] == ["one", "You said: one", "two", "You said: two", "three"]


class Redactor(Skill):
    """A guardrail stand-in: rewrites the user message before anything else sees it."""

    name = "stm_test_redactor"
    priority = 10

    @hookimpl
    def on_message(self, ctx: RequestContext, message: Message) -> Message | None:
        if message.role == "user" and "secret" in message.text():
            return Message(role="user", content=message.text().replace("secret", "[redacted]"))
        return None


async def test_what_is_stored_is_what_earlier_hooks_rewrote(stm_config: dict[str, Any]) -> None:
    spec = agent(stm_config)
    spec["skills"]["stm_test_redactor"] = None
    k = make_kernel({"bot": spec}, plugins=[scripted, memory, HeaderAuth, Tools, Redactor])
    async with kernel_client(k) as client:
        await chat(client, "my secret is 42", conversation="g")
        assert (await stored(k, "bot:c:anon:g"))[0].text() == "my [redacted] is 42"


# -- window and TTL through the skill --------------------------------------------------------


async def test_the_window_bounds_what_the_model_gets(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config={**stm_config, "max_messages": 3})
    async with kernel_client(k) as client:
        for text in ("a", "b", "c"):
            await chat(client, text, conversation="w")
        assert seen_by_model(recorder) == [("assistant", "You said: a"), ("user", "b"), ("assistant", "You said: b"), ("user", "c")]


async def test_the_token_budget_bounds_what_the_model_gets(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config={**stm_config, "max_tokens": 60})
    a, b = "a" * 40, "b" * 40  # 14 tokens each; the echoed replies 17
    async with kernel_client(k) as client:
        await chat(client, a, conversation="tok")
        await chat(client, b, conversation="tok")  # 62 tokens stored: the oldest message goes
        await chat(client, "c", conversation="tok")
        assert seen_by_model(recorder) == [
            ("assistant", f"You said: {a}"), ("user", b), ("assistant", f"You said: {b}"), ("user", "c"),
        ]
        await chat(client, "x" * 400, conversation="big")  # the newest message alone is over
        await chat(client, "y", conversation="big")
        assert seen_by_model(recorder) == [("assistant", "You said: " + "x" * 400), ("user", "y")]


async def test_a_conversation_is_forgotten_after_its_ttl(stm_config: dict[str, Any]) -> None:
    recorder = HookRecorder()
    k = kernel(recorder=recorder, memory_config={**stm_config, "ttl_seconds": 2})
    async with kernel_client(k) as client:
        await chat(client, "remember me", conversation="ttl")
        await chat(client, "still there?", conversation="ttl")
        assert seen_by_model(recorder)[0] == ("user", "remember me")
        deadline = time.monotonic() + 10
        while await stored(k, "bot:c:anon:ttl") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await chat(client, "and now?", conversation="ttl")
        assert seen_by_model(recorder) == [("user", "and now?")]


async def test_in_process_lru_bound_through_the_skill() -> None:
    k = kernel(memory_config={"max_conversations": 2})
    async with kernel_client(k) as client:
        for conv in ("1", "2", "3"):
            await chat(client, "hi", conversation=conv)
        assert len(memory_skill(k).store) == 2  # type: ignore[arg-type]
        assert await stored(k, "bot:c:anon:1") == []


# -- backends down, health, config ------------------------------------------------------------


async def test_redis_down_is_a_503_naming_the_backend_and_redis_url() -> None:
    k = kernel(memory_config={"backend": "redis", "redis_url": CLOSED_REDIS_URL, "timeout_seconds": 1})
    async with kernel_client(k) as client:
        response = await chat(client, "hi", conversation="down")
        assert response.status_code == 503
        error = response.json()["error"]
        assert "redis at redis://127.0.0.1:9/0" in error["message"]
        assert "agents.bot.skills.short_term_memory.redis_url" in error["message"]
        assert error["code"] == "memory_unavailable"
        # A stateless request does not touch the backend.
        assert (await chat(client, "hi")).status_code == 200
        detailed = (await client.get("/health/detailed")).json()
        check = detailed["checks"]["short_term_memory:redis at redis://127.0.0.1:9/0"]
        assert check["status"] == "unhealthy"
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["failing"] == ["short_term_memory:redis at redis://127.0.0.1:9/0"]


class Clobber(Skill):
    """After the model answered, puts a string under the conversation's key (another
    program's data): Redis refuses the turn's write."""

    name = "stm_test_clobber"

    def __init__(self, config: Any, agent: Any) -> None:
        super().__init__(config, agent)
        self.key = ""

    @hookimpl
    async def after_llm_call(self, ctx: RequestContext, call: Any, result: Any) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            await client.set(self.key, "another program's value")
        finally:
            await client.aclose()


async def test_a_turn_redis_refuses_to_store_is_answered_and_logged(stm_prefix: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    spec = agent({"backend": "redis", "redis_url": REDIS_URL, "key_prefix": stm_prefix})
    spec["skills"]["stm_test_clobber"] = None
    k = make_kernel({"bot": spec}, plugins=[scripted, memory, HeaderAuth, Tools, Clobber])
    clobber = next(s for s in k.agent("bot").skills if isinstance(s, Clobber))  # type: ignore[union-attr]
    clobber.key = stm_prefix + "bot:c:anon:lost"
    async with kernel_client(k) as client:
        assert answer(await chat(client, "hi", conversation="lost")) == "You said: hi"
    # The reply came after the answer; it is logged by the time the server has stopped.
    assert "agent 'bot': this turn was not stored" in caplog.text
    assert "key_prefix" in caplog.text


async def test_health_reports_each_backend(stm_prefix: str) -> None:
    k = kernel({"a": agent({"backend": "redis", "redis_url": REDIS_URL, "key_prefix": stm_prefix}), "b": agent(None)})
    async with kernel_client(k) as client:
        checks = (await client.get("/health/detailed")).json()["checks"]
        redis_check = checks["short_term_memory:redis at " + redact(REDIS_URL)]
        assert redis_check["status"] == "healthy" and redis_check["detail"] == "PONG"
        assert checks["short_term_memory:memory b"]["detail"] == {"conversations": 0, "max_conversations": 10000}
        assert (await client.get("/ready")).status_code == 200


async def test_agent_info_describes_the_memory() -> None:
    k = kernel(memory_config={"max_messages": 7})
    async with kernel_client(k) as client:
        info = (await client.get("/bot")).json()
        assert info["skill_info"]["short_term_memory"] == {
            "backend": "memory", "conversation_header": "X-Conversation-Id",
            "max_messages": 7, "max_tokens": 8000, "ttl_seconds": 86400.0,
        }


def test_a_bad_setting_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"agents\.bot\.skills\.short_term_memory.*backend"):
        kernel(memory_config={"backend": "postgres"})
    with pytest.raises(ConfigError, match=r"max_messages"):
        kernel(memory_config={"max_messages": 0})
    with pytest.raises(ConfigError, match=r"agents\.bot\.skills\.short_term_memory"):
        kernel(memory_config={"max_mesages": 5})


async def test_a_bad_redis_url_is_a_start_up_error() -> None:
    k = kernel(memory_config={"backend": "redis", "redis_url": "http://localhost"})
    with pytest.raises(ConfigError, match=r"agents\.bot\.skills\.short_term_memory\.redis_url"):
        await k.startup()


def test_redis_url_defaults_to_the_environment() -> None:
    config = memory.MemoryConfig()
    assert config.resolved_redis_url({}) == "redis://127.0.0.1:6379/0"
    assert config.resolved_redis_url({"REDIS_URL": "redis://elsewhere:1/2"}) == "redis://elsewhere:1/2"
    assert memory.MemoryConfig(redis_url="redis://x/0").resolved_redis_url({"REDIS_URL": "y"}) == "redis://x/0"



async def test_a_lowered_max_messages_applies_to_a_longer_stored_history(stm_prefix: str) -> None:
    """A replica with a smaller window (a rolling config change) cuts what it loads."""
    wide = kernel(memory_config={"backend": "redis", "redis_url": REDIS_URL, "key_prefix": stm_prefix, "max_messages": 10})
    async with kernel_client(wide) as client:
        for text in ("a", "b", "c"):
            await chat(client, text, conversation="low")
    recorder = HookRecorder()
    narrow = kernel(recorder=recorder,
                    memory_config={"backend": "redis", "redis_url": REDIS_URL, "key_prefix": stm_prefix, "max_messages": 2})
    async with kernel_client(narrow) as client:
        await chat(client, "d", conversation="low")
        assert seen_by_model(recorder) == [("user", "c"), ("assistant", "You said: c"), ("user", "d")]

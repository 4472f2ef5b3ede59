"""A model turn that calls an agent tool and a client tool at once: the client gets its
call, and the follow-up shows the model the agent's call and result too."""

from __future__ import annotations

import json
from typing import Any

import pytest

import robutler_plugin_scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_kernel.toolturns import PREFIX
from robutler_specs import LLMCall, Message, RequestContext, Skill, hookimpl, tool

WEATHER = {"type": "function", "function": {"name": "get_location", "description": "Where the user is",
                                             "parameters": {"type": "object", "properties": {}}}}


class Clock(Skill):
    """The agent's own tool, and a record of what the model is shown."""

    name = "clock"
    shown: list[list[Message]] = []

    @tool
    def get_time(self) -> str:
        """The time."""
        return "12:00"

    @hookimpl
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        Clock.shown.append(list(call.messages))


def mixed(order: list[str]) -> dict[str, Any]:
    calls = [{"name": name} for name in order]
    return {
        "a": {
            "model": "scripted/mixed",
            "skills": {"clock": None, "scripted": {"scripts": {"mixed": [{"tool_calls": calls}]}}},
        }
    }


@pytest.mark.parametrize("order", [["get_time", "get_location"], ["get_location", "get_time"]])
@pytest.mark.parametrize("stream", [False, True])
async def test_the_follow_up_shows_the_model_the_agents_call_and_result(order: list[str], stream: bool) -> None:
    Clock.shown = []
    kernel = make_kernel(mixed(order), plugins=[robutler_plugin_scripted, Clock])
    user = {"role": "user", "content": "what time is it where I am?"}
    async with kernel_client(kernel) as client:
        first = await client.post("/a/chat/completions", json={"messages": [user], "tools": [WEATHER], "stream": stream})
        if stream:
            events = [json.loads(line[6:]) for line in first.text.splitlines() if line.startswith("data: {")]
            deltas = [tc for e in events if e["choices"] for tc in e["choices"][0]["delta"].get("tool_calls") or []]
            calls = [{"id": d["id"], "type": "function", "function": {"name": d["function"]["name"], "arguments": ""}}
                     for d in deltas if d.get("id")]
            assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
        else:
            choice = first.json()["choices"][0]
            assert choice["finish_reason"] == "tool_calls"
            calls = choice["message"]["tool_calls"]
        # The client gets only its own call.
        assert [c["function"]["name"] for c in calls] == ["get_location"]
        assert calls[0]["id"].startswith(PREFIX)
        follow_up = [
            user,
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "Oslo"},
        ]
        second = await client.post("/a/chat/completions", json={"messages": follow_up, "tools": [WEATHER]})
    assert second.status_code == 200, second.text
    answer = second.json()["choices"][0]["message"]["content"]
    # The model saw both results: the agent's and the client's.
    assert "Tool get_time returned: 12:00" in answer and "Tool get_location returned: Oslo" in answer
    shown = Clock.shown[-1]
    assistant = next(m for m in shown if m.role == "assistant")
    assert [c.function.name for c in assistant.tool_calls or []] == order  # the model's own order
    assert {m.tool_call_id for m in shown if m.role == "tool"} == {c.id for c in assistant.tool_calls or []}


async def test_a_turn_no_longer_kept_leaves_the_conversation_as_sent() -> None:
    kernel = make_kernel(mixed(["get_time", "get_location"]), plugins=[robutler_plugin_scripted, Clock])
    user = {"role": "user", "content": "time?"}
    call = {"id": f"{PREFIX}gone", "type": "function", "function": {"name": "get_location", "arguments": "{}"}}
    follow_up = [user, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": call["id"], "content": "Oslo"}]
    async with kernel_client(kernel) as client:
        response = await client.post("/a/chat/completions", json={"messages": follow_up, "tools": [WEATHER]})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Tool get_location returned: Oslo"


async def test_a_turn_of_client_calls_only_keeps_the_models_ids() -> None:
    config = mixed(["get_location"])
    kernel = make_kernel(config, plugins=[robutler_plugin_scripted, Clock])
    async with kernel_client(kernel) as client:
        response = await client.post("/a/chat/completions",
                                     json={"messages": [{"role": "user", "content": "where?"}], "tools": [WEATHER]})
    [call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert not call["id"].startswith(PREFIX)


async def test_the_follow_up_may_reach_another_replica_sharing_redis() -> None:
    import os
    import uuid

    import robutler_plugin_memory
    from robutler_kernel import Kernel
    from robutler_kernel.config import config_from_dict

    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"robutler:test:{uuid.uuid4().hex}:"

    def replica() -> Kernel:
        config = config_from_dict({
            "server": {"metrics_port": None}, "agents": mixed(["get_time", "get_location"]),
            "plugins": {"memory": {"redis_url": redis_url, "key_prefix": prefix}},
        })
        return Kernel(config, plugins=[robutler_plugin_scripted, robutler_plugin_memory, Clock], discover=False)

    user = {"role": "user", "content": "time?"}
    async with kernel_client(replica()) as one:
        first = await one.post("/a/chat/completions", json={"messages": [user], "tools": [WEATHER]})
    calls = first.json()["choices"][0]["message"]["tool_calls"]
    follow_up = [user, {"role": "assistant", "tool_calls": calls}, {"role": "tool", "tool_call_id": calls[0]["id"], "content": "Oslo"}]
    async with kernel_client(replica()) as two:
        second = await two.post("/a/chat/completions", json={"messages": follow_up, "tools": [WEATHER]})
    assert "Tool get_time returned: 12:00" in second.json()["choices"][0]["message"]["content"]

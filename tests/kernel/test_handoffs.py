"""Handoffs between agents of one kernel: the target answers, streamed through, with the
caller's identity; loops and depth are stopped; usage is the chain's; hooks see it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

import robutler_plugin_scripted
from robutler_kernel.testing import HookRecorder, kernel_client, make_kernel
from robutler_specs import (
    AgentCall,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Identity,
    Message,
    RequestContext,
    Skill,
    ToolInvocation,
    ToolResult,
    Usage,
    hookimpl,
)

USER = [{"role": "user", "content": "I have a billing question"}]


def scripted(**scripts: Any) -> dict[str, Any]:
    return {"scripted": {"scripts": scripts}}


def transfer(to: str) -> list[dict[str, Any]]:
    return [{"tool_calls": [{"name": f"transfer_to_{to}"}]}]


def agents(**extra: Any) -> dict[str, Any]:
    """A front desk that hands every conversation to billing, which answers."""
    return {
        "front": {
            "model": "scripted/route",
            "handoffs": ["billing"],
            "skills": scripted(route=transfer("billing")),
            **extra,
        },
        "billing": {
            "description": "Answers billing questions",
            "model": "scripted/answer",
            "skills": scripted(answer=[{"content": "Your invoice is paid."}]),
        },
    }


def chunks_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def test_the_target_answers_and_says_so() -> None:
    kernel = make_kernel(agents(), plugins=[robutler_plugin_scripted])
    async with kernel_client(kernel) as client:
        info = (await client.get("/front")).json()
        response = await client.post("/front/chat/completions", json={"messages": USER})
    assert [t["name"] for t in info["tools"]] == ["transfer_to_billing"]
    assert "Answers billing questions" in info["tools"][0]["description"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Your invoice is paid."
    assert body["model"] == "front" and body["agent"] == "billing"
    assert response.headers["x-robutler-agent"] == "billing"
    # The chain's usage: front's call (2 + 4 words... counted by the scripted model) and billing's.
    usage = body["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    direct = await kernel.agent("billing").run(USER)  # type: ignore[union-attr]
    assert usage["prompt_tokens"] > direct.usage.prompt_tokens


async def test_without_a_handoff_no_agent_field_or_header() -> None:
    kernel = make_kernel(agents(), plugins=[robutler_plugin_scripted])
    async with kernel_client(kernel) as client:
        response = await client.post("/billing/chat/completions", json={"messages": USER})
    assert "agent" not in response.json() and "x-robutler-agent" not in response.headers


async def test_a_streamed_handoff_streams_the_targets_chunks_through() -> None:
    slow = agents()
    slow["billing"]["skills"]["scripted"]["chunk_delay"] = 0.0
    kernel = make_kernel(slow, plugins=[robutler_plugin_scripted])
    async with kernel_client(kernel) as client:
        response = await client.post(
            "/front/chat/completions",
            json={"messages": USER, "stream": True, "stream_options": {"include_usage": True}},
        )
    assert response.status_code == 200
    chunks = chunks_of(response.text)
    assert response.text.rstrip().endswith("data: [DONE]")
    assert len({c["id"] for c in chunks}) == 1 and all(c["model"] == "front" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Your invoice is paid."
    # one chunk per word from billing, passed through as they came
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == 4
    final, usage_only = chunks[-2], chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop" and final["agent"] == "billing"
    assert usage_only["choices"] == [] and usage_only["agent"] == "billing"
    assert usage_only["usage"]["total_tokens"] > 0


class Audit(Skill):
    """Keeps the caller's last word out of what leaves, and records what came back."""

    name = "audit"
    seen: list[Any] = []

    @hookimpl
    def before_handoff(self, ctx: RequestContext, handoff: ToolInvocation) -> None:
        assert handoff.messages is not None
        handoff.messages[:] = [Message(role="user", content="(redacted)")]
        Audit.seen.append(("before", handoff.name))

    @hookimpl
    def after_handoff(self, ctx: RequestContext, handoff: ToolInvocation, result: ToolResult) -> ToolResult:
        Audit.seen.append(("after", result.content))
        return ToolResult(content=result.content + " (via front)")


async def test_before_handoff_filters_what_leaves_and_after_handoff_rewrites() -> None:
    Audit.seen = []
    config = agents()
    config["front"]["skills"]["audit"] = None
    config["billing"]["model"] = "scripted/echo"
    kernel = make_kernel(config, plugins=[robutler_plugin_scripted, Audit])
    async with kernel_client(kernel) as client:
        response = await client.post("/front/chat/completions", json={"messages": USER})
    assert response.json()["choices"][0]["message"]["content"] == "You said: (redacted) (via front)"
    assert Audit.seen == [("before", "transfer_to_billing"), ("after", "You said: (redacted)")]


class Refuse(Skill):
    name = "refuse"

    @hookimpl
    def before_handoff(self, ctx: RequestContext, handoff: ToolInvocation) -> ToolResult:
        return ToolResult(content="Billing is closed today.")


async def test_before_handoff_may_replace_the_handoff() -> None:
    config = agents()
    config["front"]["skills"]["refuse"] = None
    recorder = HookRecorder()
    kernel = make_kernel(config, plugins=[robutler_plugin_scripted, Refuse], recorder=recorder)
    async with kernel_client(kernel) as client:
        response = await client.post("/front/chat/completions", json={"messages": USER})
    assert response.json()["choices"][0]["message"]["content"] == "Billing is closed today."
    # billing never ran
    assert [c.agent for c in recorder.calls if c.hook == "on_connection"] == ["front"]


async def test_a_loop_is_stopped_with_a_clear_error_the_model_reads() -> None:
    config = {
        "a": {"model": "scripted/go", "handoffs": ["b"], "skills": scripted(go=transfer("b"))},
        "b": {"model": "scripted/back", "handoffs": ["a"], "skills": scripted(back=transfer("a"))},
    }
    kernel = make_kernel(config, plugins=[robutler_plugin_scripted])
    async with kernel_client(kernel) as client:
        response = await client.post("/a/chat/completions", json={"messages": USER})
    assert response.status_code == 200
    body = response.json()
    text = body["choices"][0]["message"]["content"]
    assert text.startswith("Tool transfer_to_a returned: Error: the handoff to a failed:")
    assert "already handling this request (a -> b -> a)" in text and "loop" in text
    assert body["agent"] == "b"


async def test_the_depth_limit_stops_a_long_chain() -> None:
    names = ["a", "b", "c", "d"]
    config = {
        name: {
            "model": "scripted/next", "handoffs": [nxt], "max_handoff_depth": 2,
            "skills": scripted(next=transfer(nxt)),
        }
        for name, nxt in zip(names, [*names[1:], "a"], strict=True)
    }
    config["d"] = {"model": "scripted/echo", "max_handoff_depth": 2}
    kernel = make_kernel(config, plugins=[robutler_plugin_scripted])
    async with kernel_client(kernel) as client:
        response = await client.post("/a/chat/completions", json={"messages": USER})
    text = response.json()["choices"][0]["message"]["content"]
    # a -> b -> c, and c may not pass it on: d would be the third agent after a
    assert "the handoff to d failed" in text and "max_handoff_depth" in text
    assert response.json()["agent"] == "c"


async def test_a_chain_header_from_another_server_is_checked() -> None:
    kernel = make_kernel(agents(), plugins=[robutler_plugin_scripted])
    async with kernel_client(kernel) as client:
        loop = await client.post("/billing/chat/completions", json={"messages": USER},
                                 headers={"X-Robutler-Chain": "front,billing"})
        deep = await client.post("/billing/chat/completions", json={"messages": USER},
                                 headers={"X-Robutler-Chain": "x1,x2,x3,x4"})
        fine = await client.post("/billing/chat/completions", json={"messages": USER},
                                 headers={"X-Robutler-Chain": "front"})
    assert loop.status_code == 400 and loop.json()["error"]["code"] == "handoff_loop"
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "handoff_too_deep"
    assert fine.status_code == 200


async def test_an_unknown_target_is_a_tool_error_and_the_model_goes_on() -> None:
    config = agents()
    config["front"]["handoffs"] = ["nobody"]
    config["front"]["skills"] = scripted(route=transfer("nobody"))
    kernel = make_kernel(config, plugins=[robutler_plugin_scripted])
    async with kernel_client(kernel) as client:
        response = await client.post("/front/chat/completions", json={"messages": USER})
    text = response.json()["choices"][0]["message"]["content"]
    assert text.startswith("Tool transfer_to_nobody returned: Error: the handoff to nobody failed: no agent named 'nobody'")
    assert "agent" not in response.json()


class Who(Skill):
    """Stands in for auth: the caller is alice, an owner."""

    name = "who"
    priority = 5
    seen: list[tuple[str, str | None, tuple[str, ...], str | None]] = []

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        if ctx.headers.get("x-user"):
            ctx.identity = Identity(user_id=ctx.headers["x-user"], scopes=("owner",))
        Who.seen.append((ctx.agent.name, ctx.identity.user_id, ctx.chain, ctx.headers.get("x-authorized-amount")))


async def test_the_callers_identity_and_budget_go_with_it_and_hooks_run_once_each() -> None:
    Who.seen = []
    config = agents()
    config["front"]["skills"]["who"] = None
    config["billing"]["skills"]["who"] = None

    class Budget(Skill):
        name = "budget"

        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            ctx.budget = lambda: 2.5

    config["front"]["skills"]["budget"] = None
    recorder = HookRecorder()
    kernel = make_kernel(config, plugins=[robutler_plugin_scripted, Who, Budget], recorder=recorder)
    async with kernel_client(kernel) as client:
        response = await client.post("/front/chat/completions", json={"messages": USER}, headers={"x-user": "alice"})
    assert response.status_code == 200
    assert Who.seen == [("front", "alice", (), None), ("billing", "alice", ("front",), "2.5")]
    finals = [c.agent for c in recorder.calls if c.hook == "finalize_connection"]
    assert sorted(finals) == ["billing", "front"]  # each turn finalized exactly once


@pytest.mark.parametrize("stream", [False, True])
async def test_library_callers_run_another_agent_for_a_request(stream: bool) -> None:
    kernel = make_kernel(agents(), plugins=[robutler_plugin_scripted])
    await kernel.startup()
    try:
        front = kernel.agent("front")
        assert front is not None
        parent = front.context(USER)
        if stream:
            text = ""
            async for chunk in kernel.stream_agent("billing", [Message(role="user", content="hi")], parent=parent):
                for choice in chunk.choices:
                    text += choice.delta.content or ""
        else:
            completion = await kernel.complete_agent("billing", [Message(role="user", content="hi")], parent=parent)
            text = completion.choices[0].message.text()
        assert text == "Your invoice is paid."
        kinds = [(r.kind, r.agent, r.paid) for r in parent.usage]
        assert kinds == [("llm", "billing", False), ("agent", "billing", True)]
        assert parent.answered_by is None  # asking another agent is not handing off to it
        assert await kernel.find_agent("billing") is not None and await kernel.find_agent("nope") is None
    finally:
        await kernel.shutdown()


# -- remote targets, through agent_complete / agent_stream -----------------------------------


class FakeRemote(Skill):
    """Answers remote handoffs itself (the nli plugin does it over HTTP)."""

    name = "fakeremote"
    calls_agents = True
    calls: list[AgentCall] = []

    def _completion(self, call: AgentCall) -> ChatCompletion:
        return ChatCompletion(
            id="chatcmpl-remote", created=0, model="billing",
            choices=[Choice(0, Message(role="assistant", content=f"remote got {call.messages[-1].text()}"), "stop")],
            usage=Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10, cost=0.25),
            agent="billing-desk",
        )

    @hookimpl
    async def agent_complete(self, ctx: RequestContext, call: AgentCall) -> ChatCompletion:
        FakeRemote.calls.append(call)
        return self._completion(call)

    @hookimpl
    async def agent_stream(self, ctx: RequestContext, call: AgentCall) -> AsyncIterator[ChatCompletionChunk]:
        FakeRemote.calls.append(call)
        answer = self._completion(call)

        async def chunks() -> AsyncIterator[ChatCompletionChunk]:
            for word in answer.choices[0].message.text().split(" "):
                yield ChatCompletionChunk(id="x", created=0, model="billing", choices=[ChunkChoice(0, Delta(content=word + " "))])
            yield ChatCompletionChunk(id="x", created=0, model="billing", choices=[ChunkChoice(0, Delta(), "stop")],
                                      usage=answer.usage, agent="billing-desk")

        return chunks()


def remote_agents() -> dict[str, Any]:
    config = agents()
    config["front"]["handoffs"] = [{"agent": "https://agents.example/billing", "description": "Billing, elsewhere"}]
    return config


@pytest.mark.parametrize("stream", [False, True])
async def test_hook_agent_complete(stream: bool) -> None:
    FakeRemote.calls = []
    kernel = make_kernel(remote_agents(), plugins=[robutler_plugin_scripted, FakeRemote])
    front = kernel.agent("front")
    assert front is not None and "fakeremote" in [s.name for s in front.skills]  # added for the URL handoff
    async with kernel_client(kernel) as client:
        response = await client.post("/front/chat/completions", json={"messages": USER, "stream": stream})
    assert response.status_code == 200, response.text
    [call] = FakeRemote.calls
    assert call.url == "https://agents.example/billing" and call.stream is stream
    assert call.chain == ["front"] and call.messages[-1].text() == USER[0]["content"]
    if stream:
        chunks = chunks_of(response.text)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        final = chunks[-1]
        usage, answered = final["usage"], final["agent"]
    else:
        body = response.json()
        text, usage, answered = body["choices"][0]["message"]["content"], body["usage"], body["agent"]
        assert response.headers["x-robutler-agent"] == "billing-desk"
    assert text.strip() == f"remote got {USER[0]['content']}"
    assert answered == "billing-desk"
    # the remote's tokens count; its cost was charged to this agent, not yet to the payer
    assert usage["prompt_tokens"] > 7 and usage["completion_tokens"] > 3
    assert "cost" not in usage


async def test_hook_agent_stream() -> None:
    await test_hook_agent_complete(stream=True)


def test_a_remote_handoff_without_a_plugin_that_calls_agents_is_a_start_up_error() -> None:
    from robutler_specs import PluginError

    with pytest.raises(PluginError, match=r"hands off to https://agents.example/billing.*robutler-plugin-nli"):
        make_kernel(remote_agents(), plugins=[robutler_plugin_scripted])

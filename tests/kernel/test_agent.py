"""The agent loop: tools, rounds, client tools, usage, params, scope, isolation."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import make_kernel
from robutler_specs import (
    Identity,
    PaymentRequired,
    RequestContext,
    Skill,
    hookimpl,
    tool,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "client_lookup",
        "description": "Runs on the client",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}


class Toolbox(Skill):
    """Tools for the tests: sync, async, slow, failing, scoped, context-aware."""

    name = "toolbox"

    @tool
    def add(self, a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: first number
            b: second number
        """
        return a + b

    @tool
    def which_thread(self) -> str:
        """Name the thread the tool runs in."""
        return threading.current_thread().name

    @tool
    async def slow(self, seconds: float) -> str:
        """Sleep, then answer."""
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @tool
    def broken(self) -> str:
        """Always fails."""
        raise RuntimeError("the disk is on fire")

    @tool(scope="admin")
    def secret(self) -> str:
        """Admin only."""
        return "the launch codes"

    @tool
    def whoami(self, ctx: RequestContext) -> str:
        """Who is asking."""
        return ctx.identity.user_id or "anonymous"

    @tool
    def charge(self) -> str:
        """Refuses with a payment error."""
        raise PaymentRequired("no credits left")


def kernel_with(script: list[dict[str, Any]] | dict[str, Any] | None = None, **agent: Any) -> Any:
    skills = {"toolbox": None, "scripted": {"scripts": {"s": script}} if script is not None else None}
    spec = {"model": "scripted/s" if script is not None else "scripted/echo", "skills": skills, **agent}
    return make_kernel({"bot": spec}, plugins=[scripted, Toolbox])


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


async def run(kernel: Any, text: str = "hi", **params: Any) -> Any:
    await kernel.startup()
    return await kernel.agent("bot").run([{"role": "user", "content": text}], **params)


async def test_plain_answer_has_usage_and_agent_name() -> None:
    result = await run(kernel_with(), "hello world")
    assert result.model == "bot"
    assert result.choices[0].message.content == "You said: hello world"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens > 0


async def test_internal_tool_loop_feeds_results_back() -> None:
    kernel = kernel_with([{"tool_calls": [call("add", a=2, b=3)]}, {"content": "five"}])
    result = await run(kernel)
    assert result.choices[0].message.content == "five"
    ctx_records = []

    class Spy(Skill):
        name = "spy"

        @hookimpl
        def finalize_connection(self, ctx: RequestContext) -> None:
            ctx_records.extend(ctx.usage)

    kernel = make_kernel(
        {"bot": {"model": "scripted/s", "skills": {"toolbox": None, "spy": None, "scripted": {"scripts": {"s": [{"tool_calls": [call("add", a=2, b=3)]}]}}}}},
        plugins=[scripted, Toolbox, Spy],
    )
    result = await run(kernel)
    # Past the script the model follows its rules: it reports the tool result.
    assert result.choices[0].message.content == "Tool add returned: 5"
    assert [r.kind for r in ctx_records] == ["llm", "tool", "llm"]
    assert ctx_records[1].plugin == "toolbox"


async def test_usage_is_summed_over_every_llm_call() -> None:
    kernel = kernel_with([{"tool_calls": [call("add", a=1, b=1)]}, {"tool_calls": [call("add", a=2, b=2)]}, {"content": "done"}])
    single = await run(kernel_with([{"content": "done"}]))
    result = await run(kernel)
    assert result.usage.prompt_tokens > 2 * single.usage.prompt_tokens
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


async def test_tool_calls_of_one_turn_run_concurrently() -> None:
    kernel = kernel_with([{"tool_calls": [call("slow", seconds=0.5)] * 4}])
    await kernel.startup()
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run(kernel)
    assert loop.time() - started < 1.5  # one after another would take 2 s
    assert result.choices[0].message.content.count("slept 0.5") == 4


async def test_sync_tools_run_off_the_event_loop() -> None:
    result = await run(kernel_with([{"tool_calls": [call("which_thread")]}]))
    assert "MainThread" not in result.choices[0].message.content
    assert "returned: " in result.choices[0].message.content


async def test_tool_timeout_becomes_a_result_the_model_sees() -> None:
    result = await run(kernel_with([{"tool_calls": [call("slow", seconds=5)]}], tool_timeout=0.2))
    assert "timed out after 0.2 s" in result.choices[0].message.content


async def test_failing_tool_becomes_a_result_not_a_crash() -> None:
    result = await run(kernel_with([{"tool_calls": [call("broken")]}]))
    assert "RuntimeError: the disk is on fire" in result.choices[0].message.content


async def test_bad_arguments_are_reported_to_the_model() -> None:
    result = await run(kernel_with([{"tool_calls": [call("add", a="two")]}]))
    text = result.choices[0].message.content
    assert "invalid arguments for tool 'add'" in text


async def test_request_error_from_a_tool_stops_the_request() -> None:
    with pytest.raises(PaymentRequired):
        await run(kernel_with([{"tool_calls": [call("charge")]}]))


async def test_max_tool_rounds_gives_a_clear_outcome() -> None:
    kernel = kernel_with({"turns": [{"tool_calls": [call("add", a=1, b=1)]}], "repeat": True}, max_tool_rounds=3)
    result = await run(kernel)
    choice = result.choices[0]
    assert choice.finish_reason == "length"
    assert "max_tool_rounds=3" in choice.message.content


async def test_zero_tool_rounds_never_runs_a_tool() -> None:
    result = await run(kernel_with([{"tool_calls": [call("add", a=1, b=1)]}], max_tool_rounds=0))
    assert result.choices[0].finish_reason == "length"


async def test_client_tools_are_returned_to_the_client_and_conversation_continues() -> None:
    kernel = kernel_with([{"tool_calls": [call("client_lookup", q="x")]}, {"content": "thanks for the result"}])
    await kernel.startup()
    agent = kernel.agent("bot")
    first = await agent.run([{"role": "user", "content": "look it up"}], tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "client_lookup"
    assert json.loads(tool_call.function.arguments) == {"q": "x"}
    follow_up = [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "tool_calls": [{"id": tool_call.id, "type": "function", "function": {"name": "client_lookup", "arguments": tool_call.function.arguments}}]},
        {"role": "tool", "tool_call_id": tool_call.id, "content": "42"},
    ]
    second = await agent.run(follow_up, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "thanks for the result"
    assert second.choices[0].finish_reason == "stop"


async def test_client_tool_named_like_an_agent_tool_is_rejected() -> None:
    clash = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    from robutler_specs import BadRequest

    with pytest.raises(BadRequest, match="clash"):
        await run(kernel_with(), tools=[clash])


async def test_scope_hides_tools_from_the_listing() -> None:
    seen: list[list[str]] = []

    class Spy(Skill):
        name = "spy"

        @hookimpl
        def before_llm_call(self, call: Any) -> None:
            seen.append([t.function.name for t in call.tools])

    kernel = make_kernel({"bot": {"model": "scripted/echo", "skills": {"toolbox": None, "spy": None}}}, plugins=[scripted, Toolbox, Spy])
    await run(kernel)
    assert "secret" not in seen[0] and "add" in seen[0]


async def test_scope_is_enforced_at_execution_even_if_the_model_names_the_tool() -> None:
    result = await run(kernel_with([{"tool_calls": [call("secret")]}]))
    text = result.choices[0].message.content
    assert "launch codes" not in text
    assert "no tool named 'secret'" in text


async def test_admin_identity_sees_and_runs_admin_tools() -> None:
    class AdminAuth(Skill):
        name = "auth"
        priority = 5

        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            ctx.identity = Identity(user_id="root", scopes=("admin",))

    kernel = make_kernel(
        {"bot": {"model": "scripted/s", "skills": {"auth": None, "toolbox": None, "scripted": {"scripts": {"s": [{"tool_calls": [call("secret")]}, {"tool_calls": [call("whoami")]}]}}}}},
        plugins=[scripted, Toolbox, AdminAuth],
    )
    result = await run(kernel)
    assert result.choices[0].message.content == "Tool whoami returned: root"


async def test_request_scoped_tools_never_leak_to_the_next_request() -> None:
    def bonus() -> str:
        """A tool for one request only."""
        return "bonus!"

    class Overlay(Skill):
        name = "overlay"

        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            if ctx.headers.get("x-bonus"):
                ctx.add_tool(bonus)

    kernel = make_kernel(
        {"bot": {"model": "scripted/echo", "skills": {"overlay": None}}}, plugins=[scripted, Overlay]
    )
    await kernel.startup()
    agent = kernel.agent("bot")
    with_bonus = await agent.complete(agent.context([{"role": "user", "content": "call bonus"}], headers={"x-bonus": "1"}))
    without = await agent.complete(agent.context([{"role": "user", "content": "call bonus"}]))
    assert with_bonus.choices[0].message.content == "Tool bonus returned: bonus!"
    assert without.choices[0].message.content == "You said: call bonus"


async def test_params_are_forwarded_to_the_provider() -> None:
    seen: list[dict[str, Any]] = []

    class Spy(Skill):
        name = "spy"

        @hookimpl
        def before_llm_call(self, call: Any) -> None:
            seen.append(dict(call.params))

    kernel = make_kernel({"bot": {"model": "scripted/echo", "skills": {"spy": None}}}, plugins=[scripted, Spy])
    params = {
        "temperature": 0.2, "max_tokens": 50, "top_p": 0.9, "stop": ["END"], "tool_choice": "auto",
        "response_format": {"type": "json_object"}, "seed": 7, "user": "u1",
    }
    await run(kernel, **params)
    assert seen == [params]


async def test_scripted_model_honours_max_tokens_and_stop() -> None:
    result = await run(kernel_with(), "one two three four five", max_tokens=3)
    assert result.choices[0].message.content == "You said: one"
    assert result.choices[0].finish_reason == "length"
    result = await run(kernel_with(), "alpha END beta", stop="END")
    assert result.choices[0].message.content == "You said: alpha "


async def test_concurrent_requests_never_see_each_others_state() -> None:
    class Stateful(Skill):
        name = "stateful"

        @hookimpl
        async def on_connection(self, ctx: RequestContext) -> None:
            ctx.state["stateful"] = ctx.user_message.text() if ctx.user_message else ""
            ctx.identity = Identity(user_id=ctx.state["stateful"])
            await asyncio.sleep(0.01)

        @tool
        async def mine(self, ctx: RequestContext) -> str:
            """What this request stored."""
            await asyncio.sleep(0.01)
            return f"{ctx.state['stateful']}/{ctx.identity.user_id}"

    kernel = make_kernel({"bot": {"model": "scripted/echo", "skills": {"stateful": None}}}, plugins=[scripted, Stateful])
    await kernel.startup()
    agent = kernel.agent("bot")
    texts = [f"call mine user{i}" for i in range(40)]
    results = await asyncio.gather(*(agent.run([{"role": "user", "content": t}]) for t in texts))
    for text, result in zip(texts, results, strict=True):
        assert result.choices[0].message.content == f"Tool mine returned: {text}/{text}"


async def test_streaming_yields_role_deltas_and_final_usage_with_one_id() -> None:
    kernel = kernel_with()
    await kernel.startup()
    chunks = [c async for c in kernel.agent("bot").run_streaming([{"role": "user", "content": "a b c"}])]
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: a b c"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


async def test_streaming_client_tool_calls_carry_their_index() -> None:
    kernel = kernel_with([{"tool_calls": [call("client_lookup", q="a"), call("client_lookup", q="b")]}])
    await kernel.startup()
    chunks = [
        c
        async for c in kernel.agent("bot").run_streaming([{"role": "user", "content": "go"}], tools=[WEATHER_TOOL])
    ]
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [d.index for d in deltas] == [0, 1]
    assert [json.loads(d.function.arguments) for d in deltas] == [{"q": "a"}, {"q": "b"}]
    assert all(d.id for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_streaming_internal_tool_loop_streams_only_text() -> None:
    kernel = kernel_with([{"tool_calls": [call("add", a=20, b=22)]}, {"content": "The answer is 42"}])
    await kernel.startup()
    chunks = [c async for c in kernel.agent("bot").run_streaming([{"role": "user", "content": "sum"}])]
    assert all(not c.choices or not c.choices[0].delta.tool_calls for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The answer is 42"


async def test_handoff_result_becomes_the_answer() -> None:
    from robutler_specs import handoff

    class Desk(Skill):
        name = "desk"

        @handoff(name="to_billing", description="Hand the conversation to billing")
        def to_billing(self, reason: str) -> str:
            return f"billing took over: {reason}"

    kernel = make_kernel(
        {"bot": {"model": "scripted/s", "skills": {"desk": None, "scripted": {"scripts": {"s": [{"tool_calls": [call("to_billing", reason="refund")]}]}}}}},
        plugins=[scripted, Desk],
    )
    result = await run(kernel)
    assert result.choices[0].message.content == "billing took over: refund"
    assert result.choices[0].finish_reason == "stop"


async def test_prompts_are_scoped_and_ordered() -> None:
    from robutler_specs import prompt

    systems: list[str] = []

    class Prompts(Skill):
        name = "prompts"

        @prompt(priority=10)
        def first(self) -> str:
            return "FIRST"

        @prompt(scope="owner")
        def hidden(self) -> str:
            return "OWNER ONLY"

        @hookimpl
        def build_prompt(self, ctx: RequestContext) -> str:
            return "DYNAMIC"

        @hookimpl
        def before_llm_call(self, call: Any) -> None:
            systems.append(call.messages[0].content)

    kernel = make_kernel({"bot": {"model": "scripted/echo", "instructions": "BASE", "skills": {"prompts": None}}}, plugins=[scripted, Prompts])
    await run(kernel)
    assert systems == ["BASE\n\nFIRST\n\nDYNAMIC"]


async def test_config_tools_are_loaded_from_module_references() -> None:
    kernel = make_kernel(
        {"bot": {"model": "scripted/echo", "tools": ["tests.kernel.sample_tools:get_weather"]}}, plugins=[scripted]
    )
    result = await run(kernel, "call get_weather city=Paris")
    assert result.choices[0].message.content == "Tool get_weather returned: Sunny in Paris"


async def test_a_hook_editing_call_tools_never_leaks_into_the_next_request() -> None:
    seen: list[list[str]] = []

    class Mutator(Skill):
        name = "mutator"

        @hookimpl
        def before_llm_call(self, call: Any) -> None:
            seen.append([t.function.name for t in call.tools])
            call.tools.clear()

    kernel = make_kernel({"bot": {"model": "scripted/echo", "skills": {"toolbox": None, "mutator": None}}}, plugins=[scripted, Toolbox, Mutator])
    await run(kernel)
    await run(kernel)
    assert seen[0] == seen[1] and "add" in seen[1]


async def test_a_tool_error_reaches_the_model_as_its_message(caplog: Any) -> None:
    from robutler_specs import ToolError

    class Picky(Skill):
        name = "picky"

        @tool
        def save(self, value: str) -> str:
            """Save a value."""
            raise ToolError("values longer than 3 characters are refused")

    kernel = make_kernel(
        {"bot": {"model": "scripted/s", "skills": {"picky": None, "scripted": {"scripts": {"s": [{"tool_calls": [call("save", value="long")]}]}}}}},
        plugins=[scripted, Picky],
    )
    result = await run(kernel)
    assert result.choices[0].message.content == "Tool save returned: Error: values longer than 3 characters are refused"
    assert not any(r.exc_info for r in caplog.records)

"""Tests for robutler_kernel.toolrunner: running the model's tool calls."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pluggy
import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.hooks import SkillHookCaller
from robutler_kernel.testing import make_kernel
from robutler_kernel.toolrunner import run_tool, run_tools
from robutler_specs import (
    PROJECT_NAME,
    AgentSpec,
    Message,
    PaymentRequired,
    RequestContext,
    Skill,
    SkillHooks,
    ToolInvocation,
    ToolResult,
    build_tool_spec,
    handoff,
    hookimpl,
    tool,
)


def hooks(*plugins: Any) -> SkillHookCaller:
    """A hook caller over ``plugins``, called in the order given."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(SkillHooks)
    for i, plugin in reversed(list(enumerate(plugins))):
        pm.register(plugin, name=f"p{i}")
    return SkillHookCaller(pm)


def new_ctx() -> RequestContext:
    return RequestContext(AgentSpec(name="a"), [Message(role="user", content="hi")])


def invoke(fn: Any, arguments: str = "{}", *, plugin: str = "tools", id: str = "call_1") -> ToolInvocation:
    spec = build_tool_spec(fn, plugin=plugin)
    return ToolInvocation(id=id, name=spec.name, arguments=arguments, tool=spec)


# -- running ------------------------------------------------------------------------------------------


async def test_sync_tool_runs_off_the_event_loop_thread() -> None:
    threads: list[int] = []

    ticked = threading.Event()

    @tool
    def blocking(seconds: float) -> str:
        """Blocks until the event loop has ticked five times (it must keep running)."""
        threads.append(threading.get_ident())
        return "done" if ticked.wait(seconds) else "the event loop was held while the tool blocked"

    async def ticker() -> None:
        for _ in range(5):
            await asyncio.sleep(0.01)
        ticked.set()

    ticking = asyncio.create_task(ticker())
    try:
        result = await run_tool(hooks(), new_ctx(), invoke(blocking, '{"seconds": 5}'), timeout=10)
    finally:
        ticking.cancel()
    assert result == ToolResult(content="done", plugin="tools")
    assert threads and threads[0] != threading.get_ident()


async def test_async_tool_runs_on_the_loop_and_its_value_becomes_text() -> None:
    threads: list[int] = []

    @tool
    async def lookup(city: str, days: int = 1) -> dict[str, Any]:
        """Look up."""
        threads.append(threading.get_ident())
        await asyncio.sleep(0)
        return {"city": city, "days": days}

    result = await run_tool(hooks(), new_ctx(), invoke(lookup, '{"city": "Oslo", "days": "2"}'), timeout=5)
    assert result.content == '{"city":"Oslo","days":2}'
    assert not result.is_error
    assert threads == [threading.get_ident()]


async def test_request_context_is_injected() -> None:
    @tool
    def whoami(ctx: RequestContext) -> str:
        """Who."""
        return ctx.request_id

    ctx = new_ctx()
    result = await run_tool(hooks(), ctx, invoke(whoami), timeout=5)
    assert result.content == ctx.request_id


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_tool_timeout_gives_an_error_result_naming_the_timeout(kind: str) -> None:
    if kind == "async":

        @tool(name="slow")
        async def slow() -> str:
            await asyncio.sleep(5)
            return "late"

    else:

        @tool(name="slow")
        def slow() -> str:
            time.sleep(1.5)
            return "late"

    started = time.perf_counter()
    result = await run_tool(hooks(), new_ctx(), invoke(slow), timeout=0.1)
    elapsed = time.perf_counter() - started
    assert result.is_error
    assert "slow" in result.content and "timed out" in result.content and "0.1" in result.content
    assert result.plugin == "tools"
    assert elapsed < 1.2, "the request does not wait for a timed-out tool (it runs 1.5 s or 5 s)"


async def test_tool_exception_becomes_an_error_result_not_a_crash() -> None:
    @tool
    def divide(a: int, b: int) -> float:
        """Divide."""
        return a / b

    ctx = new_ctx()
    result = await run_tool(hooks(), ctx, invoke(divide, '{"a": 1, "b": 0}'), timeout=5)
    assert result.is_error
    assert "divide" in result.content and "ZeroDivisionError" in result.content
    assert result.plugin == "tools"
    (record,) = ctx.usage
    assert record.ok is False and record.error == result.content


async def test_value_error_raised_by_the_tool_names_the_tool() -> None:
    @tool
    def parse_date(text: str) -> str:
        """Parse a date."""
        raise ValueError(f"not a date: {text!r}")

    result = await run_tool(hooks(), new_ctx(), invoke(parse_date, '{"text": "soon"}'), timeout=5)
    assert result.is_error
    assert "not a date" in result.content
    assert "parse_date" in result.content


async def test_invalid_arguments_become_an_error_result_naming_the_tool() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    result = await run_tool(hooks(), new_ctx(), invoke(add, '{"a": 1}'), timeout=5)
    assert result.is_error
    assert "add" in result.content and "b" in result.content


async def test_request_error_from_a_tool_propagates() -> None:
    @tool
    def expensive() -> str:
        """Costs."""
        raise PaymentRequired("out of credits")

    with pytest.raises(PaymentRequired, match="out of credits"):
        await run_tool(hooks(), new_ctx(), invoke(expensive), timeout=5)


async def test_request_error_from_before_toolcall_propagates_with_the_plugin() -> None:
    class Payments:
        @hookimpl
        def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> None:
            raise PaymentRequired("top up first")

    @tool
    def anything() -> str:
        """Never runs."""
        raise AssertionError("must not run")

    with pytest.raises(PaymentRequired) as info:
        await run_tool(hooks(Payments()), new_ctx(), invoke(anything), timeout=5)
    assert info.value.plugin == "p0"


async def test_unknown_tool_gives_an_error_result() -> None:
    inv = ToolInvocation(id="c", name="launch_rockets", arguments="{}", tool=None)
    result = await run_tool(hooks(), new_ctx(), inv, timeout=5)
    assert result.is_error
    assert "launch_rockets" in result.content


# -- hooks ---------------------------------------------------------------------------------------------


async def test_before_toolcall_veto_replaces_the_result_and_the_tool_never_runs() -> None:
    ran: list[str] = []
    seen: list[ToolInvocation] = []

    class Policy:
        @hookimpl
        async def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> ToolResult:
            seen.append(call)
            return ToolResult(content="not allowed today", is_error=True, plugin="policy")

    @tool
    def delete_everything() -> str:
        """Danger."""
        ran.append("ran")
        return "deleted"

    inv = invoke(delete_everything)
    result = await run_tool(hooks(Policy()), new_ctx(), inv, timeout=5)
    assert result == ToolResult(content="not allowed today", is_error=True, plugin="policy")
    assert ran == []
    assert seen == [inv] and seen[0].tool is inv.tool


async def test_before_toolcall_returning_none_lets_the_tool_run() -> None:
    class Observer:
        @hookimpl
        def before_toolcall(self, call: ToolInvocation) -> None:
            return None

    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    result = await run_tool(hooks(Observer()), new_ctx(), invoke(ping), timeout=5)
    assert result.content == "pong"


async def test_after_toolcall_rewrites_the_result_in_a_chain() -> None:
    class Redact:
        @hookimpl
        def after_toolcall(self, ctx: RequestContext, call: ToolInvocation, result: ToolResult) -> ToolResult:
            return ToolResult(content=result.content.replace("secret", "[redacted]"), plugin=result.plugin)

    class Audit:
        @hookimpl
        async def after_toolcall(self, result: ToolResult) -> None:
            audited.append(result.content)

    class Shout:
        @hookimpl
        def after_toolcall(self, result: ToolResult) -> ToolResult:
            return ToolResult(content=result.content.upper(), plugin=result.plugin)

    audited: list[str] = []

    @tool
    def reveal() -> str:
        """Reveal."""
        return "the secret is 42"

    result = await run_tool(hooks(Redact(), Audit(), Shout()), new_ctx(), invoke(reveal), timeout=5)
    assert audited == ["the [redacted] is 42"]
    assert result.content == "THE [REDACTED] IS 42"


async def test_after_toolcall_sees_failures_too() -> None:
    seen: list[ToolResult] = []

    class Audit:
        @hookimpl
        def after_toolcall(self, result: ToolResult) -> None:
            seen.append(result)

    @tool
    def fail() -> str:
        """Fail."""
        raise RuntimeError("boom")

    await run_tool(hooks(Audit()), new_ctx(), invoke(fail), timeout=5)
    assert len(seen) == 1 and seen[0].is_error and "boom" in seen[0].content


async def test_handoffs_use_the_handoff_hooks() -> None:
    events: list[str] = []

    class Watch:
        @hookimpl
        def before_toolcall(self) -> None:
            events.append("before_toolcall")

        @hookimpl
        def before_handoff(self, handoff: ToolInvocation) -> None:
            events.append(f"before_handoff:{handoff.name}")

        @hookimpl
        def after_handoff(self, handoff: ToolInvocation, result: ToolResult) -> ToolResult:
            events.append(f"after_handoff:{result.content}")
            return ToolResult(content=f"[via human] {result.content}")

    @handoff(name="to_human")
    def escalate(reason: str) -> str:
        return f"ticket: {reason}"

    ctx = new_ctx()
    result = await run_tool(hooks(Watch()), ctx, invoke(escalate, '{"reason": "refund"}'), timeout=5)
    assert events == ["before_handoff:to_human", "after_handoff:ticket: refund"]
    assert result.content == "[via human] ticket: refund"
    assert ctx.usage[0].kind == "handoff"


# -- usage ---------------------------------------------------------------------------------------------


async def test_every_tool_call_leaves_a_usage_record_with_its_plugin() -> None:
    @tool
    async def ok() -> str:
        """Ok."""
        await asyncio.sleep(0.01)
        return "fine"

    @tool
    def bad() -> str:
        """Bad."""
        raise RuntimeError("nope")

    ctx = new_ctx()
    await run_tool(hooks(), ctx, invoke(ok, plugin="weather"), timeout=5)
    await run_tool(hooks(), ctx, invoke(bad, plugin="broken"), timeout=5)
    first, second = ctx.usage
    assert (first.kind, first.name, first.plugin, first.ok, first.error) == ("tool", "ok", "weather", True, None)
    assert first.duration_ms >= 10
    assert (second.kind, second.name, second.plugin, second.ok) == ("tool", "bad", "broken", False)
    assert "nope" in (second.error or "")
    # Tool records never count as LLM tokens.
    assert ctx.total_usage().total_tokens == 0


async def test_a_vetoed_call_is_still_recorded() -> None:
    class Veto:
        @hookimpl
        def before_toolcall(self) -> ToolResult:
            return ToolResult(content="no", is_error=True)

    @tool
    def f() -> str:
        """F."""
        return ""

    ctx = new_ctx()
    await run_tool(hooks(Veto()), ctx, invoke(f, plugin="x"), timeout=5)
    assert [(r.kind, r.name, r.ok) for r in ctx.usage] == [("tool", "f", False)]


# -- concurrency --------------------------------------------------------------------------------------


async def test_calls_of_one_turn_run_concurrently_and_keep_their_order() -> None:
    # Each waits (at most 5 s) for the other to have started, so both end only if they run
    # at the same time: one after another, the first would fail.
    loop = asyncio.get_running_loop()
    a_started, b_started = threading.Event(), asyncio.Event()

    @tool
    async def slow_a() -> str:
        """A."""
        a_started.set()
        await asyncio.wait_for(b_started.wait(), 5)
        return "a"

    @tool
    def slow_b() -> str:
        """B (sync, in a thread)."""
        loop.call_soon_threadsafe(b_started.set)
        assert a_started.wait(5), "slow_a never started"
        return "b"

    @tool
    async def quick() -> str:
        """Quick."""
        return "q"

    calls = [invoke(slow_a, id="1"), invoke(slow_b, id="2"), invoke(quick, id="3")]
    ctx = new_ctx()
    results = await run_tools(hooks(), ctx, calls, timeout=10)
    assert [r.content for r in results] == ["a", "b", "q"]
    assert sorted(r.name for r in ctx.usage) == ["quick", "slow_a", "slow_b"]


async def test_one_failing_call_does_not_spoil_the_others() -> None:
    @tool
    async def good() -> str:
        """Good."""
        return "ok"

    @tool
    async def bad() -> str:
        """Bad."""
        raise RuntimeError("broken")

    results = await run_tools(hooks(), new_ctx(), [invoke(bad, id="1"), invoke(good, id="2")], timeout=5)
    assert results[0].is_error and not results[1].is_error
    assert results[1].content == "ok"


async def test_a_request_error_in_one_of_several_calls_propagates() -> None:
    @tool
    async def good() -> str:
        """Good."""
        return "ok"

    @tool
    async def pay() -> str:
        """Pay."""
        raise PaymentRequired("no credits")

    with pytest.raises(PaymentRequired):
        await run_tools(hooks(), new_ctx(), [invoke(good, id="1"), invoke(pay, id="2")], timeout=5)


# -- through the kernel --------------------------------------------------------------------------------


class Clock(Skill):
    """Tools for the end-to-end tests."""

    name = "clock"

    @tool
    def which_thread(self) -> str:
        """The name of the thread the tool runs in."""
        return threading.current_thread().name

    #: nap_a and nap_b each wait (at most 5 s) for the other to have started: they end
    #: only if they run at the same time (a test sets a new barrier for two).
    rendezvous: asyncio.Barrier | None = None

    async def _meet(self) -> None:
        assert self.rendezvous is not None
        await asyncio.wait_for(self.rendezvous.wait(), 5)

    @tool
    async def nap_a(self) -> str:
        """Rests until nap_b has started too."""
        await self._meet()
        return "a rested"

    @tool
    async def nap_b(self) -> str:
        """Rests until nap_a has started too."""
        await self._meet()
        return "b rested"

    @tool
    async def forever(self) -> str:
        """Never returns in time."""
        await asyncio.sleep(10)
        return "never"


def clock_agent(script: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    scripted_config = {"scripts": {"s": script}} if script else None
    return {
        "model": "scripted/s" if script else "scripted/echo",
        "skills": {"clock": None, "scripted": scripted_config},
        **extra,
    }


async def test_kernel_runs_a_sync_skill_tool_in_a_worker_thread() -> None:
    kernel = make_kernel({"bot": clock_agent()}, plugins=[scripted, Clock])
    await kernel.startup()
    try:
        completion = await kernel.agent("bot").run([{"role": "user", "content": "call which_thread"}])
    finally:
        await kernel.shutdown()
    answer = completion.choices[0].message.content or ""
    assert answer.startswith("Tool which_thread returned: ")
    assert answer.removeprefix("Tool which_thread returned: ") != threading.current_thread().name


async def test_kernel_runs_the_calls_of_one_turn_concurrently() -> None:
    script = [{"tool_calls": [{"name": "nap_a"}, {"name": "nap_b"}]}, {"content": "both rested"}]
    kernel = make_kernel({"bot": clock_agent(script)}, plugins=[scripted, Clock])
    Clock.rendezvous = asyncio.Barrier(2)
    await kernel.startup()
    try:
        ctx = kernel.agent("bot").context([{"role": "user", "content": "rest"}])
        completion = await kernel.agent("bot").complete(ctx)
    finally:
        await kernel.shutdown()
        Clock.rendezvous = None
    assert completion.choices[0].message.content == "both rested"
    tools = [r for r in ctx.usage if r.kind == "tool"]
    # Each waited for the other to start: one after another, the first would have failed.
    assert all(r.ok for r in tools), tools
    assert sorted(r.name for r in tools) == ["nap_a", "nap_b"]
    assert {r.plugin for r in tools} == {"clock"}


async def test_kernel_tool_timeout_comes_from_the_agent_config() -> None:
    kernel = make_kernel({"bot": clock_agent(tool_timeout=0.1)}, plugins=[scripted, Clock])
    await kernel.startup()
    try:
        started = time.perf_counter()
        completion = await kernel.agent("bot").run([{"role": "user", "content": "call forever"}])
        elapsed = time.perf_counter() - started
    finally:
        await kernel.shutdown()
    answer = completion.choices[0].message.content or ""
    assert "forever" in answer and "timed out" in answer and "0.1" in answer
    assert elapsed < 2

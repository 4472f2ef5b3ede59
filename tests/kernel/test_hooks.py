"""Tests for robutler_kernel.hooks: the async hook caller over a real pluggy PluginManager."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pluggy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel.hooks import HookFailed, KernelHookCaller, SkillHookCaller
from robutler_specs import (
    PROJECT_NAME,
    AgentSpec,
    Forbidden,
    LLMCall,
    LLMResult,
    Message,
    RequestContext,
    SkillHooks,
    Unauthorized,
    hookimpl,
)


def make_caller(*plugins: tuple[str, Any]) -> SkillHookCaller:
    """A caller over plugins given in *call order* (the first is called first)."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(SkillHooks)
    # pluggy calls the most recently registered implementation first.
    for name, plugin in reversed(plugins):
        pm.register(plugin, name=name)
    pm.check_pending()
    return SkillHookCaller(pm)


def ctx() -> RequestContext:
    return RequestContext(AgentSpec(name="a"), [Message(role="user", content="hi")])


def call() -> LLMCall:
    return LLMCall(model="scripted/echo", messages=[Message(role="user", content="hi")])


def result(text: str) -> LLMResult:
    return LLMResult(message=Message(role="assistant", content=text))


# -- order and awaiting -----------------------------------------------------------------------


async def test_sync_and_async_impls_are_awaited_one_after_another_in_order() -> None:
    events: list[str] = []

    class Slow:
        @hookimpl
        async def on_connection(self, ctx: RequestContext) -> None:
            events.append("slow start")
            await asyncio.sleep(0.02)
            events.append("slow end")

    class Sync:
        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            events.append("sync")

    class Fast:
        @hookimpl
        async def on_connection(self, ctx: RequestContext) -> None:
            events.append("fast start")
            await asyncio.sleep(0)
            events.append("fast end")

    caller = make_caller(("slow", Slow()), ("sync", Sync()), ("fast", Fast()))
    assert await caller.on_connection(ctx()) is None
    assert events == ["slow start", "slow end", "sync", "fast start", "fast end"]


async def test_registration_order_and_tryfirst_decide_call_order() -> None:
    events: list[str] = []

    class A:
        @hookimpl(tryfirst=True)
        def on_connection(self, ctx: RequestContext) -> None:
            events.append("a")

    class B:
        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            events.append("b")

    class C:
        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            events.append("c")

    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(SkillHooks)
    pm.register(A(), name="a")
    pm.register(B(), name="b")
    pm.register(C(), name="c")
    caller = SkillHookCaller(pm)
    assert caller.hooks()["on_connection"].plugins == ["a", "c", "b"]
    # The same order pluggy itself uses.
    pm.hook.on_connection(ctx=ctx())
    pluggy_order = list(events)
    events.clear()
    await caller.on_connection(ctx())
    assert events == pluggy_order == ["a", "c", "b"]


async def test_call_collects_awaited_non_none_results_in_order() -> None:
    class One:
        @hookimpl
        async def build_prompt(self, ctx: RequestContext) -> str:
            return "one"

    class Nothing:
        @hookimpl
        async def build_prompt(self, ctx: RequestContext) -> None:
            return None

    class Two:
        @hookimpl
        def build_prompt(self, ctx: RequestContext) -> str:
            return "two"

    caller = make_caller(("one", One()), ("nothing", Nothing()), ("two", Two()))
    assert await caller.build_prompt(ctx()) == ["one", "two"]


async def test_unimplemented_hook_returns_empty_results() -> None:
    caller = make_caller()
    assert not caller.rewrites_chunks
    assert caller.hooks()["on_chunk"].plugins == []
    assert await caller.on_connection(ctx()) is None
    assert await caller.llm_complete(ctx(), call()) is None
    message = Message(role="user", content="x")
    assert await caller.on_message(ctx(), message) is message


# -- first ------------------------------------------------------------------------------------------


async def test_first_skips_async_none_and_stops_at_the_first_result() -> None:
    called: list[str] = []

    class AsyncNone:
        @hookimpl
        async def llm_complete(self, ctx: RequestContext, call: LLMCall) -> None:
            called.append("async-none")
            return None

    class SyncNone:
        @hookimpl
        def llm_complete(self, ctx: RequestContext, call: LLMCall) -> None:
            called.append("sync-none")

    class Answer:
        @hookimpl
        async def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult:
            called.append("answer")
            return result("from answer")

    class Never:
        @hookimpl
        async def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult:
            called.append("never")
            return result("from never")

    caller = make_caller(
        ("async-none", AsyncNone()), ("sync-none", SyncNone()), ("answer", Answer()), ("never", Never())
    )
    got = await caller.llm_complete(ctx(), call())
    assert got.message.content == "from answer"
    assert called == ["async-none", "sync-none", "answer"]


async def test_first_returns_none_when_nobody_answers() -> None:
    class No:
        @hookimpl
        async def llm_complete(self, ctx: RequestContext, call: LLMCall) -> None:
            return None

    caller = make_caller(("no1", No()), ("no2", No()))
    assert await caller.llm_complete(ctx(), call()) is None


async def test_first_treats_falsy_non_none_results_as_answers() -> None:
    class EmptyString:
        @hookimpl
        def build_prompt(self, ctx: RequestContext) -> str:
            return ""

    class Later:
        @hookimpl
        def build_prompt(self, ctx: RequestContext) -> str:
            return "later"

    caller = make_caller(("empty", EmptyString()), ("later", Later()))
    assert await caller.hooks()["build_prompt"].first(ctx=ctx()) == ""


# -- chain -------------------------------------------------------------------------------------------


async def test_chain_threads_the_value_through_every_impl() -> None:
    seen: list[str] = []

    class Upper:
        @hookimpl
        async def on_message(self, ctx: RequestContext, message: Message) -> Message:
            seen.append(message.text())
            return Message(role=message.role, content=message.text().upper())

    class Keep:
        @hookimpl
        def on_message(self, ctx: RequestContext, message: Message) -> None:
            seen.append(message.text())

    class Exclaim:
        @hookimpl
        def on_message(self, message: Message) -> Message:
            seen.append(message.text())
            return Message(role=message.role, content=message.text() + "!")

    caller = make_caller(("upper", Upper()), ("keep", Keep()), ("exclaim", Exclaim()))
    final = await caller.on_message(ctx(), Message(role="user", content="hi"))
    assert final == Message(role="user", content="HI!")
    assert seen == ["hi", "HI", "HI"]


@given(st.lists(st.tuples(st.sampled_from(["append", "none"]), st.booleans()), max_size=8))
def test_chain_equals_folding_the_impls_in_call_order(steps: list[tuple[str, bool]]) -> None:
    def make(index: int, kind: str, is_async: bool) -> Any:
        def transform(message: Message) -> Message | None:
            if kind == "none":
                return None
            return Message(role=message.role, content=f"{message.text()}{index}")

        if is_async:

            class P:
                @hookimpl
                async def on_message(self, message: Message) -> Message | None:
                    await asyncio.sleep(0)
                    return transform(message)

        else:

            class P:  # type: ignore[no-redef]
                @hookimpl
                def on_message(self, message: Message) -> Message | None:
                    return transform(message)

        return P()

    caller = make_caller(*((f"p{i}", make(i, kind, a)) for i, (kind, a) in enumerate(steps)))
    final = asyncio.run(
        caller.on_message(ctx(), Message(role="user", content=">"))
    )
    expected = ">" + "".join(str(i) for i, (kind, _) in enumerate(steps) if kind == "append")
    assert final.text() == expected


# -- errors ----------------------------------------------------------------------------------------


async def test_request_error_gets_the_plugin_filled_in() -> None:
    class Gate:
        @hookimpl
        async def on_connection(self, ctx: RequestContext) -> None:
            raise Unauthorized("no key")

    caller = make_caller(("gate", Gate()))
    with pytest.raises(Unauthorized) as info:
        await caller.on_connection(ctx())
    assert info.value.plugin == "gate"
    assert info.value.status == 401


async def test_request_error_keeps_a_plugin_it_already_names() -> None:
    class Proxy:
        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            raise Forbidden("upstream said no", plugin="upstream")

    caller = make_caller(("proxy", Proxy()))
    with pytest.raises(Forbidden) as info:
        await caller.on_connection(ctx())
    assert info.value.plugin == "upstream"


async def test_request_error_stops_the_remaining_impls() -> None:
    called: list[str] = []

    class Gate:
        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            raise Unauthorized("no")

    class After:
        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            called.append("after")

    caller = make_caller(("gate", Gate()), ("after", After()))
    with pytest.raises(Unauthorized):
        await caller.on_connection(ctx())
    assert called == []


@pytest.mark.parametrize("method", ["call", "first", "chain"])
async def test_other_exceptions_become_hook_failed_naming_plugin_and_hook(method: str) -> None:
    class Broken:
        @hookimpl
        async def on_message(self, ctx: RequestContext, message: Message) -> None:
            raise KeyError("missing")

    caller = make_caller(("broken-skill", Broken()))
    kwargs = {"ctx": ctx(), "message": Message(role="user", content="x")}
    with pytest.raises(HookFailed) as info:
        hook = caller.hooks()["on_message"]
        if method == "chain":
            await hook.chain("message", **kwargs)
        else:
            await getattr(hook, method)(**kwargs)
    error = info.value
    assert error.status == 500
    assert error.plugin == "broken-skill"
    assert "broken-skill" in error.message and "on_message" in error.message
    assert "KeyError" in error.message
    assert isinstance(error.__cause__, KeyError)
    body = error.to_body()["error"]
    assert body["type"] == "server_error" and "Traceback" not in str(body["message"])


async def test_sync_impl_exception_becomes_hook_failed_too() -> None:
    class Broken:
        @hookimpl
        def build_prompt(self, ctx: RequestContext) -> str:
            return 1 / 0  # type: ignore[return-value]

    caller = make_caller(("math", Broken()))
    with pytest.raises(HookFailed, match=r"'math'.*build_prompt.*ZeroDivisionError"):
        await caller.build_prompt(ctx())


async def test_call_all_logged_runs_every_impl_even_when_some_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    class AsyncBoom:
        @hookimpl
        async def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
            ran.append("async-boom")
            raise RuntimeError("async boom")

    class SyncBoom:
        @hookimpl
        def finalize_connection(self, ctx: RequestContext) -> None:
            ran.append("sync-boom")
            raise Unauthorized("even request errors are swallowed here")

    class Settle:
        @hookimpl
        async def finalize_connection(self, error: BaseException | None) -> None:
            ran.append(f"settle:{error!r}")

    caller = make_caller(("async-boom", AsyncBoom()), ("sync-boom", SyncBoom()), ("settle", Settle()))
    with caplog.at_level(logging.ERROR, logger="robutler.hooks"):
        assert await caller.finalize_connection(ctx(), None) is None
    assert ran == ["async-boom", "sync-boom", "settle:None"]
    logged = caplog.text
    assert "async-boom" in logged and "sync-boom" in logged and "finalize_connection" in logged


# -- argument subsets ---------------------------------------------------------------------------


async def test_impls_may_accept_any_subset_of_the_arguments() -> None:
    got: dict[str, Any] = {}

    class NoArgs:
        @hookimpl
        def after_llm_call(self) -> None:
            got["none"] = True

    class OnlyResult:
        @hookimpl
        async def after_llm_call(self, result: LLMResult) -> None:
            got["result"] = result.message.content

    class Reordered:
        @hookimpl
        def after_llm_call(self, result: LLMResult, ctx: RequestContext) -> None:
            got["reordered"] = (result.message.content, ctx.agent.name)

    caller = make_caller(("none", NoArgs()), ("only", OnlyResult()), ("reordered", Reordered()))
    await caller.after_llm_call(ctx(), call(), result("done"))
    assert got == {"none": True, "result": "done", "reordered": ("done", "a")}


def test_an_impl_asking_for_an_unknown_argument_is_rejected_at_registration() -> None:
    class Bad:
        @hookimpl
        def on_connection(self, ctx: RequestContext, user: str) -> None:
            pass

    with pytest.raises(pluggy.PluginValidationError, match="user"):
        make_caller(("bad", Bad()))


async def test_a_hook_argument_named_name_can_be_passed() -> None:
    # Kernel hooks such as robutler_resolve_agent(name) take a ``name`` argument; the
    # caller's own hook-name parameter must not swallow it.
    from robutler_specs import KernelHooks

    class Resolver:
        @hookimpl
        async def robutler_resolve_agent(self, name: str) -> AgentSpec:
            return AgentSpec(name=name)

    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(KernelHooks)
    pm.register(Resolver(), name="resolver")
    caller = KernelHookCaller(pm)
    spec = await caller.robutler_resolve_agent("dynamic")
    assert spec == AgentSpec(name="dynamic")

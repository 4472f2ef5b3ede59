"""The typed hook facade: one method per hook with the spec's signature, wrappers refused
at build time, the trace switch, and what kernel hooks receive."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Generator
from typing import Any

import pytest

import robutler_plugin_scripted
from robutler_kernel.hooks import KernelHookCaller, SkillHookCaller, tracing
from robutler_kernel.testing import make_kernel
from robutler_specs import (
    KernelAPI,
    KernelHooks,
    PluginError,
    RequestContext,
    Skill,
    SkillHooks,
    hookimpl,
)


def _params(fn: Any) -> list[str]:
    return [name for name in inspect.signature(fn).parameters if name != "self"]


@pytest.mark.parametrize(("specs", "facade"), [(SkillHooks, SkillHookCaller), (KernelHooks, KernelHookCaller)])
def test_every_hook_has_a_facade_method_with_the_specs_parameters(specs: type, facade: type) -> None:
    hooks = [name for name in vars(specs) if not name.startswith("_")]
    assert hooks
    for name in hooks:
        method = getattr(facade, name, None)
        assert method is not None, f"{facade.__name__} has no method for hook {name}"
        assert _params(method) == _params(getattr(specs, name)), name
    # And no method for a hook that does not exist.
    public = {n for n, v in vars(facade).items() if callable(v) and not n.startswith("_")}
    assert public - set(hooks) == {"hooks"}


def test_the_kernel_names_no_hook_as_a_string() -> None:
    import robutler_kernel

    root = inspect.getfile(robutler_kernel).rsplit("/", 1)[0]
    hooks = [n for n in (*vars(SkillHooks), *vars(KernelHooks)) if not n.startswith("_")]
    from pathlib import Path

    offenders = []
    for path in Path(root).rglob("*.py"):
        if path.name == "hooks.py" or "testing" in path.parts:
            continue
        text = path.read_text()
        for name in hooks:
            for quote in ('"', "'"):
                if f"{quote}{name}{quote}" in text:
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


class WrappingSkill(Skill):
    name = "wrapping"

    @hookimpl(wrapper=True)
    def on_connection(self, ctx: RequestContext) -> Generator[None, None, None]:
        yield


class OldStyleWrappingSkill(Skill):
    name = "oldstyle"

    @hookimpl(hookwrapper=True)
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> Generator[None, None, None]:
        yield


@pytest.mark.parametrize(("skill", "hook", "kind"), [
    (WrappingSkill, "on_connection", "wrapper=True"),
    (OldStyleWrappingSkill, "finalize_connection", "hookwrapper=True"),
])
def test_a_wrapper_is_refused_when_the_agent_is_built_naming_plugin_and_hook(skill: type[Skill], hook: str, kind: str) -> None:
    with pytest.raises(PluginError) as info:
        make_kernel({"a": {"model": "scripted/echo", "skills": {skill.name: {}}}}, plugins=[robutler_plugin_scripted, skill])
    message = str(info.value)
    assert repr(skill.name) in message and hook in message and kind in message
    assert "tryfirst" in message  # says what to do instead


def test_a_kernel_hook_wrapper_is_refused_too() -> None:
    class Plugin:
        __name__ = "wrapped"

        @hookimpl(wrapper=True)
        def robutler_startup(self, kernel: Any) -> Generator[None, None, None]:
            yield

    with pytest.raises(PluginError, match=r"'wrapped'.*robutler_startup.*wrapper=True"):
        make_kernel(plugins=[robutler_plugin_scripted, Plugin()])


@pytest.mark.parametrize(("value", "on"), [("1", True), ("yes", True), ("", False), ("0", False), ("off", False)])
def test_the_trace_switch(value: str, on: bool) -> None:
    assert tracing({"ROBUTLER_TRACE_HOOKS": value}) is on


class Counting(Skill):
    name = "counting"

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        ctx.state["seen"] = True

    @hookimpl
    async def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        pass


async def test_with_the_trace_switch_every_hook_call_is_logged_with_plugin_and_duration(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ROBUTLER_TRACE_HOOKS", "1")
    kernel = make_kernel({"a": {"model": "scripted/echo", "skills": {"counting": {}}}}, plugins=[robutler_plugin_scripted, Counting])
    agent = kernel.agent("a")
    assert agent is not None
    with caplog.at_level(logging.INFO, logger="robutler.hooks"):
        await agent.run([{"role": "user", "content": "hi"}])
    lines = [r.getMessage() for r in caplog.records if r.name == "robutler.hooks"]
    assert any(line.startswith("hook on_connection plugin=counting ") and line.endswith(" ms") for line in lines)
    assert any(line.startswith("hook finalize_connection plugin=counting ") for line in lines)
    assert any(line.startswith("hook llm_complete plugin=scripted ") for line in lines)


async def test_without_the_switch_nothing_is_logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("ROBUTLER_TRACE_HOOKS", raising=False)
    kernel = make_kernel({"a": {"model": "scripted/echo", "skills": {"counting": {}}}}, plugins=[robutler_plugin_scripted, Counting])
    agent = kernel.agent("a")
    assert agent is not None
    with caplog.at_level(logging.INFO, logger="robutler.hooks"):
        await agent.run([{"role": "user", "content": "hi"}])
    assert [r for r in caplog.records if r.name == "robutler.hooks"] == []


def test_a_skill_knows_its_kernel_once_built_and_says_so_before() -> None:
    from robutler_specs import AgentSpec

    loose = Counting(Counting.Config(), AgentSpec(name="a"))
    with pytest.raises(RuntimeError, match="not attached to a kernel"):
        _ = loose.kernel
    kernel = make_kernel({"a": {"model": "scripted/echo", "skills": {"counting": {}}}}, plugins=[robutler_plugin_scripted, Counting])
    agent = kernel.agent("a")
    assert agent is not None
    assert all(skill.kernel is kernel for skill in agent.skills)


async def test_kernel_hooks_get_the_kernel_and_embed_gets_it_too() -> None:
    seen: dict[str, Any] = {}

    class Plugin:
        __name__ = "embedder"

        @hookimpl
        def robutler_startup(self, kernel: KernelAPI) -> None:
            seen["startup"] = kernel

        @hookimpl
        async def robutler_embed(self, texts: list[str], model: str | None, kernel: KernelAPI) -> list[list[float]]:
            seen["embed"] = kernel
            return [[float(len(t))] for t in texts]

    kernel = make_kernel(plugins=[robutler_plugin_scripted, Plugin()])
    await kernel.startup()
    try:
        assert await kernel.embed(["ab", "c"]) == [[2.0], [1.0]]
    finally:
        await kernel.shutdown()
    assert seen == {"startup": kernel, "embed": kernel}


def test_an_async_routes_hook_is_a_plugin_error_naming_the_plugin() -> None:
    class Plugin:
        __name__ = "asyncroutes"

        @hookimpl
        async def robutler_routes(self) -> list[Any]:
            return []

    kernel = make_kernel(plugins=[robutler_plugin_scripted, Plugin()])
    with pytest.raises(PluginError, match=r"'asyncroutes'.*robutler_routes must not be async"):
        kernel.asgi_app()

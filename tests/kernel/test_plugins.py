"""Tests for robutler_kernel.plugins: the plugin registry, entry-point discovery, skills per agent."""

from __future__ import annotations

import importlib.metadata
import types
from typing import Any

import msgspec
import pytest

from robutler_kernel import plugins as plugins_module
from robutler_kernel.hooks import SkillHookCaller
from robutler_kernel.plugins import ENV_DISABLE, ENV_LOAD, PluginRegistry
from robutler_specs import (
    ENTRY_POINT_GROUP,
    AgentSpec,
    ConfigError,
    PluginError,
    RequestContext,
    Skill,
    hookimpl,
)

FIXTURES = "tests.kernel.fixtures_plugins"


def plugin_module(name: str, *skills: type[Skill], **hooks: Any) -> types.ModuleType:
    """A plugin module built in the test, providing ``skills`` (and any other hooks)."""
    module = types.ModuleType(name)
    if skills:

        def robutler_skills() -> list[type[Skill]]:
            return list(skills)

        module.robutler_skills = hookimpl(robutler_skills)  # type: ignore[attr-defined]
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


def skill(name: str, *, requires: tuple[str, ...] = (), priority: int = 50, provider: str | None = None,
          config: type[msgspec.Struct] | None = None) -> type[Skill]:
    attrs: dict[str, Any] = {"name": name, "requires": requires, "priority": priority, "provider": provider}
    if config is not None:
        attrs["Config"] = config
    return type(f"Skill_{name}", (Skill,), attrs)


def ep(name: str, module: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=module, group=ENTRY_POINT_GROUP)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a list of entry points in place of the installed ones."""

    def install(*points: importlib.metadata.EntryPoint, skills: tuple[importlib.metadata.EntryPoint, ...] = ()) -> None:
        def fake(group: str = plugins_module.ENTRY_POINT_GROUP) -> list[importlib.metadata.EntryPoint]:
            return list(points) if group == plugins_module.ENTRY_POINT_GROUP else list(skills)

        monkeypatch.setattr(plugins_module, "entry_points", fake)

    return install


# -- adding plugins ----------------------------------------------------------------------------------


def test_add_module_registers_its_skills() -> None:
    weather, clock = skill("weather"), skill("clock")
    registry = PluginRegistry()
    info = registry.add(plugin_module("robutler_plugin_tools", weather, clock), name="tools")
    assert info.name == "tools"
    assert info.skills == [weather, clock]
    assert registry.skills == {"weather": weather, "clock": clock}
    assert registry.skill_plugin == {"weather": "tools", "clock": "tools"}
    assert registry.plugins["tools"] is info


def test_add_module_without_a_name_uses_the_module_name() -> None:
    registry = PluginRegistry()
    info = registry.add(plugin_module("robutler_plugin_weather", skill("weather")))
    assert info.name == "robutler_plugin_weather"


def test_add_skill_class_registers_it_under_its_own_name() -> None:
    weather = skill("weather")
    registry = PluginRegistry()
    info = registry.add(weather)
    assert info.name == "weather"
    assert registry.skills["weather"] is weather
    assert registry.skill_plugin["weather"] == "weather"


def test_module_kernel_hooks_are_callable_through_the_registry() -> None:
    started: list[Any] = []

    def robutler_startup(kernel: Any) -> None:
        started.append(kernel)

    registry = PluginRegistry()
    registry.add(plugin_module("m", skill("a"), robutler_startup=robutler_startup), name="m")
    registry.pm.hook.robutler_startup(kernel="K")
    assert started == ["K"]


def test_misspelled_hook_is_rejected_naming_the_plugin() -> None:
    def robutler_skill() -> list[type[Skill]]:  # missing "s"
        return []

    registry = PluginRegistry()
    with pytest.raises(PluginError) as info:
        registry.add(plugin_module("m", robutler_skill=robutler_skill), name="typo-plugin")
    assert "'typo-plugin'" in str(info.value)
    assert "robutler_skill" in str(info.value)
    # The rejected plugin left nothing behind: a fixed version can be added.
    assert "typo-plugin" not in registry.plugins
    assert registry.pm.get_plugin("typo-plugin") is None
    registry.add(plugin_module("m", skill("a")), name="typo-plugin")
    assert "a" in registry.skills


def test_kernel_hook_with_a_wrong_argument_is_rejected_naming_the_plugin() -> None:
    def robutler_startup(kernel: Any, extra: Any) -> None:
        pass

    with pytest.raises(PluginError, match="'bad-args'"):
        PluginRegistry().add(plugin_module("m", robutler_startup=robutler_startup), name="bad-args")


def test_same_plugin_name_twice_is_an_error() -> None:
    registry = PluginRegistry()
    registry.add(plugin_module("m", skill("a")), name="p")
    with pytest.raises(PluginError, match=r"'p'.*twice"):
        registry.add(plugin_module("m2", skill("b")), name="p")


def test_two_plugins_providing_one_skill_name_name_both() -> None:
    registry = PluginRegistry()
    registry.add(plugin_module("one", skill("memory")), name="redis-memory")
    with pytest.raises(PluginError) as info:
        registry.add(plugin_module("two", skill("memory")), name="sqlite-memory")
    message = str(info.value)
    assert "'memory'" in message
    assert "'redis-memory'" in message and "'sqlite-memory'" in message
    assert ENV_DISABLE in message
    # The first provider stays in charge.
    assert registry.skill_plugin["memory"] == "redis-memory"


@pytest.mark.parametrize("bad", [object(), str, "weather"])
def test_robutler_skills_must_return_skill_classes(bad: Any) -> None:
    module = types.ModuleType("m")
    module.robutler_skills = hookimpl(lambda: [bad])  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match=r"'odd'.*robutler_skills"):
        PluginRegistry().add(module, name="odd")


def test_skill_without_a_name_is_rejected() -> None:
    with pytest.raises(PluginError, match="'nameless'"):
        PluginRegistry().add(plugin_module("m", skill("")), name="nameless")


# -- discovery ---------------------------------------------------------------------------------------


def test_discover_loads_entry_points(fake_entry_points: Any) -> None:
    fake_entry_points(ep("weather", f"{FIXTURES}.weather"), ep("clock", f"{FIXTURES}.clock"))
    registry = PluginRegistry()
    registry.discover(env={})
    assert set(registry.plugins) == {"weather", "clock"}
    assert registry.skill_plugin == {"weather": "weather", "clock": "clock"}
    assert registry.plugins["weather"].module.__name__ == f"{FIXTURES}.weather"


def test_lazy_discovery_imports_a_declared_plugin_only_when_its_skill_is_needed(fake_entry_points: Any) -> None:
    declared = importlib.metadata.EntryPoint(name="weather", value=f"{FIXTURES}.weather", group="robutler.skills")
    fake_entry_points(ep("weather", f"{FIXTURES}.weather"), ep("clock", f"{FIXTURES}.clock"), skills=(declared,))
    registry = PluginRegistry()
    registry.discover(env={}, lazy=True)
    assert set(registry.plugins) == {"clock"}  # clock names no skills: imported at once
    assert set(registry.pending) == {"weather"}
    registry.ensure(["weather"])
    assert set(registry.plugins) == {"clock", "weather"} and registry.pending == {}


def test_lazy_discovery_imports_a_plugin_with_a_plugins_section(fake_entry_points: Any) -> None:
    declared = importlib.metadata.EntryPoint(name="weather", value=f"{FIXTURES}.weather", group="robutler.skills")
    fake_entry_points(ep("weather", f"{FIXTURES}.weather"), skills=(declared,))
    registry = PluginRegistry()
    registry.discover(env={}, lazy=True, sections=["weather"])
    assert set(registry.plugins) == {"weather"}


def test_discover_twice_does_not_register_twice(fake_entry_points: Any) -> None:
    fake_entry_points(ep("weather", f"{FIXTURES}.weather"))
    registry = PluginRegistry()
    registry.discover(env={})
    registry.discover(env={})
    assert list(registry.plugins) == ["weather"]


def test_explicit_plugin_is_not_rediscovered(fake_entry_points: Any) -> None:
    from tests.kernel.fixtures_plugins import weather

    fake_entry_points(ep("weather", f"{FIXTURES}.weather"))
    registry = PluginRegistry()
    registry.add(weather, name="weather")
    registry.discover(env={})
    assert list(registry.plugins) == ["weather"]


@pytest.mark.parametrize("module", ["broken", "exploding", "no_such_module_anywhere"])
def test_plugin_failing_to_import_is_named_with_the_switch_to_disable_it(
    fake_entry_points: Any, module: str
) -> None:
    fake_entry_points(ep("weather", f"{FIXTURES}.weather"), ep("fragile", f"{FIXTURES}.{module}"))
    with pytest.raises(PluginError) as info:
        PluginRegistry().discover(env={})
    message = str(info.value)
    assert "'fragile'" in message
    assert f"{ENV_DISABLE}=fragile" in message
    assert info.value.__cause__ is not None


def test_disabling_the_broken_plugin_lets_the_others_load(fake_entry_points: Any) -> None:
    fake_entry_points(ep("broken", f"{FIXTURES}.broken"), ep("weather", f"{FIXTURES}.weather"))
    registry = PluginRegistry()
    registry.discover(env={ENV_DISABLE: "broken"})
    assert list(registry.plugins) == ["weather"]


def test_allowlist_loads_only_the_listed_plugins(fake_entry_points: Any) -> None:
    fake_entry_points(
        ep("broken", f"{FIXTURES}.broken"),
        ep("clock", f"{FIXTURES}.clock"),
        ep("weather", f"{FIXTURES}.weather"),
    )
    registry = PluginRegistry()
    registry.discover(env={ENV_LOAD: " weather , clock,"})
    assert set(registry.plugins) == {"weather", "clock"}


def test_blocklist_wins_over_allowlist(fake_entry_points: Any) -> None:
    fake_entry_points(ep("clock", f"{FIXTURES}.clock"), ep("weather", f"{FIXTURES}.weather"))
    registry = PluginRegistry()
    registry.discover(env={ENV_LOAD: "weather,clock", ENV_DISABLE: "clock"})
    assert list(registry.plugins) == ["weather"]


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_allowlist_means_no_restriction(fake_entry_points: Any, value: str) -> None:
    fake_entry_points(ep("clock", f"{FIXTURES}.clock"), ep("weather", f"{FIXTURES}.weather"))
    registry = PluginRegistry()
    registry.discover(env={ENV_LOAD: value})
    assert set(registry.plugins) == {"clock", "weather"}


def test_discover_reads_the_process_environment_by_default(
    fake_entry_points: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(ep("broken", f"{FIXTURES}.broken"), ep("clock", f"{FIXTURES}.clock"))
    monkeypatch.setenv(ENV_DISABLE, "broken")
    monkeypatch.delenv(ENV_LOAD, raising=False)
    registry = PluginRegistry()
    registry.discover()
    assert list(registry.plugins) == ["clock"]


def test_the_installed_scripted_entry_point_is_discovered() -> None:
    installed = {e.name: e for e in importlib.metadata.entry_points(group="robutler.plugins")}
    assert installed["scripted"].value == "robutler_plugin_scripted"
    assert [e.name for e in plugins_module.entry_points()] == sorted(installed)
    registry = PluginRegistry()
    registry.discover(env={ENV_LOAD: "scripted"})
    info = registry.plugins["scripted"]
    assert info.distribution == "robutler-plugin-scripted"
    assert info.version
    assert registry.skill_plugin["scripted"] == "scripted"
    assert registry.provider_skill("scripted") == "scripted"


# -- skills per agent --------------------------------------------------------------------------------


def registry_with(*skills: type[Skill]) -> PluginRegistry:
    registry = PluginRegistry()
    for s in skills:
        registry.add(s)
    return registry


def test_provider_skill_is_auto_added_for_the_model_prefix() -> None:
    registry = registry_with(skill("openai", provider="openai"), skill("scripted", provider="scripted"))
    agent = AgentSpec(name="bot", model="scripted/echo")
    assert registry.skill_names_for(agent) == ["scripted"]


def test_every_fallback_and_allowed_model_gets_its_provider() -> None:
    registry = registry_with(
        skill("openai", provider="openai"),
        skill("anthropic", provider="anthropic"),
        skill("scripted", provider="scripted"),
    )
    agent = AgentSpec(
        name="bot", model=["openai/gpt-4o", "anthropic/claude"], allowed_models=["scripted/echo"]
    )
    assert registry.skill_names_for(agent) == ["openai", "anthropic", "scripted"]


def test_a_configured_provider_is_not_added_twice() -> None:
    registry = registry_with(skill("openai", provider="openai"), skill("auth"))
    agent = AgentSpec(name="bot", model="openai/gpt-4o", skills={"openai": {}, "auth": None})
    assert registry.skill_names_for(agent) == ["openai", "auth"]


def test_unknown_provider_names_agent_model_and_package() -> None:
    registry = registry_with(skill("scripted", provider="scripted"))
    with pytest.raises(PluginError) as info:
        registry.skill_names_for(AgentSpec(name="bot", model="mistral/large"))
    message = str(info.value)
    assert "'bot'" in message and "'mistral/large'" in message
    assert "pip install robutler-plugin-mistral" in message


def test_dependencies_are_resolved_for_the_agent() -> None:
    registry = registry_with(
        skill("scripted", provider="scripted"), skill("auth"), skill("payments", requires=("auth",))
    )
    agent = AgentSpec(name="shop", model="scripted/echo", skills={"payments": None})
    assert registry.skill_names_for(agent) == ["auth", "payments", "scripted"]


def test_missing_dependency_names_the_package_to_install() -> None:
    registry = registry_with(skill("scripted", provider="scripted"), skill("payments", requires=("auth",)))
    agent = AgentSpec(name="shop", model="scripted/echo", skills={"payments": None})
    with pytest.raises(PluginError, match="pip install robutler-plugin-auth"):
        registry.skill_names_for(agent)


class LimitConfig(msgspec.Struct, forbid_unknown_fields=True):
    limit: int = 10
    label: str = "x"


def test_build_skills_validates_config_into_the_skill_config_struct() -> None:
    registry = registry_with(skill("scripted", provider="scripted"), skill("limits", config=LimitConfig))
    agent = AgentSpec(name="bot", skills={"limits": {"limit": "5"}})
    instances = registry.build_skills(agent)
    limits = next(s for s in instances if s.name == "limits")
    assert limits.config == LimitConfig(limit=5)
    assert limits.agent is agent


def test_build_skills_null_config_means_defaults() -> None:
    registry = registry_with(skill("scripted", provider="scripted"), skill("limits", config=LimitConfig))
    instances = registry.build_skills(AgentSpec(name="bot", skills={"limits": None}))
    assert next(s for s in instances if s.name == "limits").config == LimitConfig()


@pytest.mark.parametrize(
    ("config", "detail"),
    [({"limit": "lots"}, "limit"), ({"limt": 3}, "limt")],
)
def test_bad_skill_config_names_agent_and_skill(config: dict[str, Any], detail: str) -> None:
    registry = registry_with(skill("scripted", provider="scripted"), skill("limits", config=LimitConfig))
    with pytest.raises(ConfigError) as info:
        registry.build_skills(AgentSpec(name="bot", skills={"limits": config}))
    message = str(info.value)
    assert "bot" in message and "limits" in message and detail in message


def test_build_skills_sorts_by_priority_keeping_config_order_for_ties() -> None:
    registry = registry_with(
        skill("scripted", provider="scripted"),
        skill("analytics", priority=90),
        skill("auth", priority=5),
        skill("b_normal"),
        skill("a_normal"),
        skill("guard", priority=10),
    )
    agent = AgentSpec(
        name="bot",
        skills={"analytics": None, "b_normal": None, "guard": None, "a_normal": None, "auth": None},
    )
    names = [s.name for s in registry.build_skills(agent)]
    assert names == ["auth", "guard", "b_normal", "a_normal", "scripted", "analytics"]


def test_skill_manager_calls_skills_in_the_given_order() -> None:
    seen: list[str] = []

    def make(name: str, priority: int) -> type[Skill]:
        def on_connection(self: Skill, ctx: RequestContext) -> None:
            seen.append(self.name)

        return type(name, (Skill,), {"name": name, "priority": priority, "on_connection": hookimpl(on_connection)})

    registry = registry_with(
        skill("scripted", provider="scripted"), make("late", 90), make("early", 1), make("middle", 50)
    )
    agent = AgentSpec(name="bot", skills={"late": None, "middle": None, "early": None})
    skills = registry.build_skills(agent)
    caller = SkillHookCaller(registry.skill_manager(agent, skills))
    assert caller.hooks()["on_connection"].plugins == ["early", "middle", "late"]
    registry.skill_manager(agent, skills).hook.on_connection(ctx=None)
    assert seen == ["early", "middle", "late"]


def test_skill_with_a_misspelled_hook_is_rejected_naming_agent_and_skill() -> None:
    class Typo(Skill):
        name = "typo"

        @hookimpl
        def on_conection(self, ctx: RequestContext) -> None:
            pass

    registry = registry_with(skill("scripted", provider="scripted"), Typo)
    agent = AgentSpec(name="bot", skills={"typo": None})
    with pytest.raises(PluginError) as info:
        registry.skill_manager(agent, registry.build_skills(agent))
    message = str(info.value)
    assert "'bot'" in message and "typo" in message and "on_conection" in message

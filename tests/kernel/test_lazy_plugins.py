"""Plugins are imported when an agent needs them (the installed entry points)."""

from __future__ import annotations

from robutler_kernel import Kernel
from robutler_kernel.config import config_from_dict

ENV = {"ROBUTLER_LOAD_PLUGINS": "scripted,memory,vector,payments,auth,agentstore,longterm"}


def kernel(agents: dict[str, object], plugins: dict[str, object] | None = None) -> Kernel:
    config = config_from_dict({"server": {"metrics_port": None}, "agents": agents, "plugins": plugins or {}})
    return Kernel(config, env=ENV)


def test_only_the_plugins_an_agent_uses_are_imported() -> None:
    k = kernel({"a": {"model": "scripted/echo", "skills": {"short_term_memory": None}}})
    assert sorted(k.registry.plugins) == ["memory", "scripted"]
    assert {"vector", "payments", "auth", "longterm", "agentstore"} <= set(k.registry.pending)


def test_a_required_skill_brings_its_plugin() -> None:
    k = kernel({"a": {"model": "scripted/echo", "skills": {"payments": {"require_known_models": False}}}})
    assert {"payments", "auth", "scripted"} <= set(k.registry.plugins)  # payments requires auth
    assert "vector" not in k.registry.plugins


def test_a_plugins_section_brings_its_plugin() -> None:
    k = kernel({"a": {"model": "scripted/echo"}}, plugins={"memory": {}})
    assert "memory" in k.registry.plugins and "vector" not in k.registry.plugins


def test_a_skill_no_plugin_names_imports_the_rest_before_giving_up() -> None:
    import pytest

    from robutler_specs import PluginError

    with pytest.raises(PluginError, match="nonexistent"):
        kernel({"a": {"model": "scripted/echo", "skills": {"nonexistent": None}}})


def test_plugins_and_check_still_see_every_installed_plugin() -> None:
    from robutler_kernel.plugins import PluginRegistry

    registry = PluginRegistry()
    registry.discover(ENV)
    assert {"scripted", "memory", "vector", "payments", "auth", "agentstore", "longterm"} <= set(registry.plugins)
    assert registry.pending == {}

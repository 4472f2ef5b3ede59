"""Plugin discovery and the skill registry.

Plugins are modules named by entry points in the ``robutler.plugins`` group. Loading is
guarded: a plugin that fails to import is named in the error together with the way to switch
it off. ``ROBUTLER_LOAD_PLUGINS`` (comma-separated allowlist) and ``ROBUTLER_DISABLE_PLUGINS``
(blocklist) choose which entry points load. Tests skip discovery and pass plugins explicitly.

Plugins are imported when needed. A plugin that names its skills in the ``robutler.skills``
entry point group (``short_term_memory = "robutler_plugin_memory"``) is imported only when
an agent uses one of them (as a configured skill, a model's provider, a required skill), or
when the config has a ``plugins.<name>`` section for it: a server with one agent on openai
does not import, nor hold in memory, the SDKs of the plugins it does not use. A plugin that
names none is imported at start-up, as before. ``discover(lazy=False)`` imports them all
(``robutler-kernel plugins`` and ``check``).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pluggy

from robutler_specs import (
    ENTRY_POINT_GROUP,
    PROJECT_NAME,
    AgentSpec,
    ConfigError,
    KernelHooks,
    PluginError,
    Skill,
    SkillHooks,
    hookimpl,
)

from .hooks import Hook
from .resolve import resolve_skills

ENV_LOAD = "ROBUTLER_LOAD_PLUGINS"
ENV_DISABLE = "ROBUTLER_DISABLE_PLUGINS"


@dataclass
class PluginInfo:
    """A loaded plugin: its module, where it came from, and the skills it provides."""

    name: str
    module: Any
    distribution: str | None = None
    version: str | None = None
    skills: list[type[Skill]] = field(default_factory=list)


class _SkillPlugin:
    """A Skill class registered on its own (tests, embedding apps): a plugin providing it."""

    def __init__(self, skill: type[Skill]) -> None:
        self.skill = skill

    @hookimpl
    def robutler_skills(self) -> list[type[Skill]]:
        return [self.skill]


def _names(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    names = {part.strip() for part in value.split(",") if part.strip()}
    return names or None


def entry_points(group: str = ENTRY_POINT_GROUP) -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of ``group`` (``robutler.plugins``), sorted by name."""
    return sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name)


#: Where a plugin names the skills it provides, so that it is imported only when needed.
SKILLS_GROUP = "robutler.skills"


class PluginRegistry:
    """The plugins a kernel runs with, and the skills they provide.

    Holds the kernel-level plugin manager (plugin modules, kernel hooks) and builds one
    plugin manager per agent holding that agent's skill instances.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(KernelHooks)
        self.plugins: dict[str, PluginInfo] = {}
        self.skills: dict[str, type[Skill]] = {}
        self.skill_plugin: dict[str, str] = {}
        #: Entry points allowed but not imported yet (lazy discovery), by plugin name.
        self.pending: dict[str, importlib.metadata.EntryPoint] = {}
        #: Skill name -> the pending plugin that says it provides it.
        self._provides: dict[str, str] = {}

    # -- loading ---------------------------------------------------------------------

    def discover(
        self, env: Mapping[str, str] | None = None, *, lazy: bool = False, sections: Iterable[str] = ()
    ) -> None:
        """Find the installed plugin entry points, honouring the allow/block lists, and
        import them: all of them, or with ``lazy`` only those that name no skills and those
        with a ``plugins:`` section in ``sections``; the others wait for :meth:`ensure`."""
        env = os.environ if env is None else env
        allow = _names(env.get(ENV_LOAD))
        block = _names(env.get(ENV_DISABLE)) or set()
        for ep in entry_points():
            if ep.name in block or (allow is not None and ep.name not in allow):
                continue
            if ep.name not in self.plugins:
                self.pending[ep.name] = ep
        by_module = {ep.value.split(":", 1)[0]: name for name, ep in self.pending.items()}
        declared: set[str] = set()
        for skill_ep in entry_points(SKILLS_GROUP):
            plugin = by_module.get(skill_ep.value.split(":", 1)[0])
            if plugin is not None:
                self._provides.setdefault(skill_ep.name, plugin)
                declared.add(plugin)
        wanted = set(sections)
        for name in list(self.pending):
            if not lazy or name not in declared or name in wanted:
                self._load(name)

    def _load(self, name: str) -> None:
        ep = self.pending.pop(name, None)
        if ep is None:
            return
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        try:
            module = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} ({dist or ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}. Fix or uninstall it, or switch it off "
                f"with {ENV_DISABLE}={ep.name}"
            ) from exc
        self.add(module, name=ep.name, distribution=dist, version=version)

    def ensure(self, skills: Iterable[str]) -> None:
        """Import the pending plugins that provide ``skills`` and the skills they require
        (a name no plugin declares imports every pending plugin: it may be anyone's)."""
        todo = [s for s in skills if s not in self.skills]
        while todo and self.pending:
            name = todo.pop()
            if name in self.skills:
                continue
            plugin = self._provides.get(name)
            if plugin is not None and plugin in self.pending:
                self._load(plugin)
            elif plugin is None:
                for pending in list(self.pending):
                    self._load(pending)
            skill = self.skills.get(name)
            if skill is not None:
                todo.extend(r for r in skill.requires if r not in self.skills)

    def ensure_agent_caller(self) -> None:
        """Import pending plugins until one provides a skill that calls remote agents."""
        while self.pending and not any(s.calls_agents for s in self.skills.values()):
            self._load(next(iter(self.pending)))

    def add(
        self,
        plugin: Any,
        *,
        name: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginInfo:
        """Register a plugin: a module (or object) with kernel hooks, or a Skill class."""
        if isinstance(plugin, type) and issubclass(plugin, Skill):
            name = name or plugin.name
            plugin = _SkillPlugin(plugin)
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if name in self.plugins:
            raise PluginError(f"plugin {name!r} is registered twice")
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            raise PluginError(f"plugin {name!r} has an invalid hook: {exc}") from exc
        info = PluginInfo(name, plugin, distribution, version)
        skills = Hook(self.pm.hook.robutler_skills).call_by_plugin().get(name)
        for skill in skills or []:
            self._add_skill(info, skill)
        self.plugins[name] = info
        return info

    def _add_skill(self, info: PluginInfo, skill: Any) -> None:
        if not (isinstance(skill, type) and issubclass(skill, Skill)) or not skill.name:
            raise PluginError(
                f"plugin {info.name!r} returned {skill!r} from robutler_skills: "
                "expected a Skill subclass with a name"
            )
        owner = self.skill_plugin.get(skill.name)
        if owner is not None and self.skills[skill.name] is not skill:
            raise PluginError(
                f"skill {skill.name!r} is provided by both plugin {owner!r} and plugin "
                f"{info.name!r}; switch one off with {ENV_DISABLE}"
            )
        self.skills[skill.name] = skill
        self.skill_plugin[skill.name] = info.name
        info.skills.append(skill)

    # -- per agent -----------------------------------------------------------------------

    def provider_skill(self, prefix: str) -> str | None:
        """The skill serving models with this provider prefix, if any."""
        for name, skill in self.skills.items():
            if skill.provider == prefix:
                return name
        return None

    def skill_names_for(self, agent: AgentSpec) -> list[str]:
        """The skills an agent runs: configured ones, the providers of its models, and
        their dependencies (resolved transitively)."""
        requested = list(agent.skills)
        prefixes = [m.split("/", 1)[0] for m in agent.models + list(agent.allowed_models)]
        # A provider's skill is named after its prefix by convention (openai, anthropic).
        self.ensure([*requested, *(p for p in prefixes if not self.provider_skill(p))])
        for model in agent.models + list(agent.allowed_models):
            prefix = model.split("/", 1)[0]
            if any(self.skills[s].provider == prefix for s in requested if s in self.skills):
                continue
            provider = self.provider_skill(prefix)
            if provider is None:
                raise PluginError(
                    f"agent {agent.name!r}: no installed plugin serves model {model!r}; "
                    f"install one that provides provider {prefix!r} "
                    f"(pip install robutler-plugin-{prefix})"
                )
            requested.append(provider)
        remote = [h.agent for h in agent.handoff_targets if h.remote]
        if remote:
            self.ensure_agent_caller()
        if remote and not any(s in self.skills and self.skills[s].calls_agents for s in requested):
            caller = next((name for name, skill in self.skills.items() if skill.calls_agents), None)
            if caller is None:
                raise PluginError(
                    f"agent {agent.name!r} hands off to {remote[0]}, but no installed plugin calls remote "
                    "agents; pip install robutler-plugin-nli"
                )
            requested.append(caller)
        self.ensure(requested)
        requires = {name: skill.requires for name, skill in self.skills.items()}
        return resolve_skills(requested, requires, agent=agent.name)

    def build_skills(self, agent: AgentSpec) -> list[Skill]:
        """Instantiate the agent's skills with validated config, in hook call order."""
        instances: list[Skill] = []
        for name in self.skill_names_for(agent):
            cls = self.skills[name]
            raw = agent.skills.get(name) or {}
            try:
                config = msgspec.convert(raw, cls.Config, strict=False)
            except msgspec.ValidationError as exc:
                raise ConfigError(f"agents.{agent.name}.skills.{name}: {exc}") from None
            instances.append(cls(config, agent))
        # Stable sort: equal priorities keep config order.
        return sorted(instances, key=lambda s: s.priority)

    def skill_manager(self, agent: AgentSpec, skills: Iterable[Skill]) -> pluggy.PluginManager:
        """A plugin manager holding ``skills`` so that they are called in the given order."""
        pm = pluggy.PluginManager(PROJECT_NAME)
        pm.add_hookspecs(SkillHooks)
        # pluggy calls the most recently registered implementation first.
        for skill in reversed(list(skills)):
            try:
                pm.register(skill, name=skill.name)
            except pluggy.PluginValidationError as exc:
                raise PluginError(
                    f"agent {agent.name!r}: skill {skill.name!r} has an invalid hook: {exc}"
                ) from exc
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"agent {agent.name!r}: {exc}") from exc
        return pm

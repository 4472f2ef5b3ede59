"""``robutler-kernel check``: every problem of a config file at once, each at its file:line.

Loading a config (:mod:`.config`) checks its shape. Checking goes on with what only the
installed plugins know, and reports all of it together, in file order:

- ``plugins:``: each name is an installed plugin; a plugin module that defines
  ``PluginSettings`` (a msgspec Struct) has its section validated into it;
- each agent's ``skills:``: each skill is provided by an installed plugin, and its settings
  validate into the skill's ``Config``;
- each agent's models are served by an installed provider skill;
- each agent's ``tools:`` import (from ``sys.path`` or the config file's folder);
- each agent builds (dependencies resolve, the skills accept their settings);
- ``agents_dir`` is a folder, and each of its agent files passes all of the above, its
  problems at its own ``file:line`` (after the config file's).

A misspelt name gets the nearest installed one (``did you mean``), not an install hint for
the misspelling; a name nothing resembles gets the ``pip install`` line of the plugin that
usually provides it.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from robutler_specs import AgentSpec, ConfigError, PluginError

from .config import KernelConfig, read_tree
from .dynamic import agent_files, folder_of
from .kernel import Kernel
from .resolve import package_for
from .toolrefs import import_ref

#: The module attribute a plugin may define: the Struct of its ``plugins.<name>`` section.
SETTINGS_ATTRIBUTE = "PluginSettings"


@dataclass
class CheckReport:
    """What ``check`` found: ``errors`` (``file:line: key: problem`` lines, in file order)
    and, per agent that passed, a one-line summary."""

    source: str
    errors: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.errors


def _close(name: str, choices: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def check_file(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    plugins: Iterable[Any] = (),
    discover: bool = True,
) -> CheckReport:
    """Check the config file at ``path`` against the installed plugins.

    :param env: the environment for ``${...}`` and the plugin switches (default ``os.environ``).
    :param plugins: plugins to register explicitly (as :class:`Kernel` takes them).
    :param discover: also load the installed entry-point plugins.
    """
    source = os.fspath(path)
    report = CheckReport(source)
    env = os.environ if env is None else env
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        report.errors.append(f"{source}: cannot read the configuration file: {exc}")
        return report
    try:
        loader, data = read_tree(text, source, env)
    except ConfigError as exc:  # not YAML: nothing more can be checked
        report.errors.append(str(exc))
        return report
    config = loader.sections(data)
    base_dir = os.path.dirname(os.path.abspath(path))
    try:
        # Agents are built one by one below, so that each reports its own problems.
        kernel = Kernel(
            msgspec.structs.replace(config, agents={}, base_dir=base_dir), plugins=plugins, discover=discover, env=env
        )
    except (ConfigError, PluginError) as exc:  # a plugin that does not load
        loader.error((), str(exc))
        report.errors = [message for _, message in sorted(loader.errors, key=lambda e: e[0])]
        return report
    registry = kernel.registry
    if discover:
        registry.discover(env)  # every installed plugin: check says what is and is not installed

    for name, settings in config.plugins.items():
        where = ("plugins", name)
        info = registry.plugins.get(name)
        if info is None:
            close = _close(name, registry.plugins)
            installed = ", ".join(sorted(registry.plugins)) or "none"
            hint = f"did you mean `{close}`?" if close else f"installed: {installed}"
            loader.error(where, f"no installed plugin is named `{name}` ({hint})")
            continue
        schema = getattr(info.module, SETTINGS_ATTRIBUTE, None)
        if isinstance(schema, type) and issubclass(schema, msgspec.Struct):
            loader.convert(settings, schema, where, strict=False)

    for name, spec in config.agents.items():
        errors_before = len(loader.errors)
        _check_agent(loader, kernel, spec, base_dir)
        if len(loader.errors) > errors_before:
            continue
        try:
            agent = kernel.build_agent(spec)
        except (ConfigError, PluginError, ValueError) as exc:
            _agent_error(loader, name, str(exc))
            continue
        except Exception as exc:  # a plugin's bug: name it, do not crash the check
            _agent_error(loader, name, f"building the agent failed: {type(exc).__name__}: {exc}")
            continue
        skills = ", ".join(s.name for s in agent.skills) or "-"
        report.agents.append(f"{name}: model {spec.model}; skills: {skills}; tools: {len(agent.tools)}")

    file_errors = _check_agents_dir(report, loader, kernel, config, base_dir, env)
    report.errors = [message for _, message in sorted(loader.errors, key=lambda e: e[0])] + file_errors
    return report


def _check_agents_dir(
    report: CheckReport, loader: Any, kernel: Kernel, config: KernelConfig, base_dir: str, env: Mapping[str, str]
) -> list[str]:
    """Check every agent file of ``agents_dir`` as the config's agents are checked; the
    folder's own problem goes to ``loader``, the files' problems are returned (file by
    file, each in line order)."""
    if config.agents_dir is None:
        return []
    folder = folder_of(config.agents_dir, base_dir)
    assert folder is not None
    if not os.path.isdir(folder):
        loader.error(("agents_dir",), f"`{config.agents_dir}` is not a folder ({folder}); create it or fix the path")
        return []
    errors: list[str] = []
    for name, path in agent_files(folder):
        shown = os.path.join(config.agents_dir, os.path.basename(path))
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            file_loader, data = read_tree(text, shown, env)
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(f"{shown}: cannot read the agent file: {exc}")
            continue
        except ConfigError as exc:  # not YAML
            errors.append(str(exc))
            continue
        spec = file_loader.agent(name, data, (), owner="file name")
        if name in config.agents:
            line = loader.line(("agents", name))
            file_loader.error(
                (), f"agent `{name}` is also in the config file ({loader.source}:{line}), which wins; rename or remove this file"
            )
        if spec is not None and not file_loader.errors:
            _check_agent(file_loader, kernel, spec, base_dir, ())
        if spec is not None and not file_loader.errors:
            try:
                agent = kernel.build_agent(spec)
            except (ConfigError, PluginError, ValueError) as exc:
                _agent_error(file_loader, name, str(exc), ())
            except Exception as exc:
                _agent_error(file_loader, name, f"building the agent failed: {type(exc).__name__}: {exc}", ())
            else:
                skills = ", ".join(s.name for s in agent.skills) or "-"
                report.agents.append(f"{name} ({shown}): model {spec.model}; skills: {skills}; tools: {len(agent.tools)}")
        errors.extend(message for _, message in sorted(file_loader.errors, key=lambda e: e[0]))
    return errors


def _check_agent(loader: Any, kernel: Kernel, spec: AgentSpec, base_dir: str, path: tuple[str | int, ...] | None = None) -> None:
    """The agent's skills, models and tools against what is installed; problems go to
    ``loader``, under ``path`` (default ``agents.<name>``; ``()`` for an agent file)."""
    registry = kernel.registry
    path = ("agents", spec.name) if path is None else path
    for skill_name, settings in spec.skills.items():
        where = (*path, "skills", skill_name)
        cls = registry.skills.get(skill_name)
        if cls is None:
            close = _close(skill_name, registry.skills)
            if close:
                loader.error(where, f"no installed plugin provides skill `{skill_name}` (did you mean `{close}`?)")
            else:
                loader.error(
                    where,
                    f"no installed plugin provides skill `{skill_name}`; install it with: pip install {package_for(skill_name)}",
                )
            continue
        loader.convert(settings or {}, cls.Config, where, strict=False)
    providers = {skill.provider: name for name, skill in registry.skills.items() if skill.provider}
    models = [("model", spec.model)] if isinstance(spec.model, str) else [(i, m) for i, m in enumerate(spec.model)]
    listed = [(("model",) if key == "model" else ("model", key), model) for key, model in models]
    listed += [(("allowed_models", i), model) for i, model in enumerate(spec.allowed_models)]
    for key, model in listed:
        prefix = model.split("/", 1)[0]
        if prefix in providers:
            continue
        close = _close(prefix, providers)
        if close:
            hint = f"did you mean `{close}/{model.split('/', 1)[1]}`?"
        else:
            hint = f"install one: pip install robutler-plugin-{prefix}"
        loader.error((*path, *key), f"no installed plugin serves models `{prefix}/...` ({hint})")
    for i, ref in enumerate(spec.tools):
        try:
            import_ref(ref, base_dir)
        except Exception as exc:
            loader.error((*path, "tools", i), f"cannot import `{ref}`: {type(exc).__name__}: {exc}")


_KEY_PATH = re.compile(r"agents\.(?P<path>[^\s:]+):\s*(?P<message>.*)", re.S)


def _agent_error(loader: Any, agent: str, message: str, base: tuple[str | int, ...] | None = None) -> None:
    """Report a build error at the line of the key it names (``agents.<a>.skills.x.y: ...``,
    as skills word their errors), else at the agent's line (``base``: where the agent
    is, default ``agents.<a>``; ``()`` for an agent file)."""
    path: tuple[str | int, ...] = ("agents", agent) if base is None else base
    match = _KEY_PATH.match(message)
    if match and match.group("path").startswith(f"{agent}."):
        keys = match.group("path")[len(agent) + 1 :].split(".")
        path = (*path, *(int(k) if k.isdigit() else k for k in keys))
        message = match.group("message")
    loader.error(path, message)


__all__ = ["SETTINGS_ATTRIBUTE", "CheckReport", "check_file"]

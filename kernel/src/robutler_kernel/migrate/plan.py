"""A whole migration: V1 files in, V2 config files (and generated tool modules) out,
written all or nothing.

``-o FILE`` (default ``./robutler.yaml``) gathers every agent into one config; ``-o DIR/``
(a folder) writes one config per V1 file, ``DIR/<stem>.yaml``. A generated tools module,
when V1 tools need one, sits next to its config as ``<config stem>_v1_tools.py``.
"""

from __future__ import annotations

import importlib
import io
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from .agent import AgentMapper, Installed, MigratedAgent
from .findings import FAILING, Finding
from .tools import module_text
from .v1 import V1Error, read_v1, v1_files

#: Where the V2 config goes when no ``-o`` is given: the file ``serve`` and ``check`` read.
DEFAULT_OUTPUT = "robutler.yaml"


@dataclass
class Output:
    """One file to write."""

    path: Path
    text: str
    agents: list[str] = field(default_factory=list)


@dataclass
class Migration:
    """What a migration found and would write.

    :ivar agents: every V1 agent, mapped.
    :ivar errors: problems with no V1 field to blame (unreadable files, a name two files
        claim, an output that exists), as ``file[:line]: what`` lines.
    :ivar outputs: the files to write (empty when there is an error).
    """

    agents: list[MigratedAgent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        """Every finding, agent by agent."""
        return [f for agent in self.agents for f in agent.findings]

    @property
    def blocked(self) -> bool:
        """Nothing can be written: an error, or a field whose problem is an error."""
        return bool(self.errors) or any(f.level == "error" for f in self.findings)

    @property
    def complete(self) -> bool:
        """Everything migrated: no error, nothing left out (``--check`` exits 0)."""
        return not self.errors and not any(f.level in FAILING for f in self.findings)


def installed_skills() -> Installed:
    """The skills the installed plugins provide (entry points), with their ``Config``."""
    from ..plugins import PluginRegistry

    registry = PluginRegistry()
    registry.discover()
    configs = {name: cls.Config for name, cls in registry.skills.items()}
    providers = {cls.provider: name for name, cls in registry.skills.items() if cls.provider}
    return Installed(configs, providers)


def plan(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    model_map: Mapping[str, str] | None = None,
    installed: Installed | None = None,
    force: bool = False,
) -> Migration:
    """Read and map every V1 agent of ``source`` (a file or a folder) and render the V2 files.

    :param output: a file (one config for every agent), or a folder (a config per V1
        file); default ``./robutler.yaml``.
    :param model_map: V1 model name (or ``*``) -> ``<provider>/<model>``.
    :param installed: the installed skills (default: discovered).
    :param force: existing output files may be replaced.
    """
    migration = Migration()
    installed = installed_skills() if installed is None else installed
    target = Path(output if output is not None else DEFAULT_OUTPUT)
    per_file = str(output or "").endswith(("/", os.sep)) or target.is_dir()
    try:
        files = v1_files(source)
    except V1Error as exc:
        migration.errors.append(str(exc))
        return migration
    groups: dict[Path, list[MigratedAgent]] = {}
    seen: dict[Path, dict[str, MigratedAgent]] = {}
    for path in files:
        try:
            found = read_v1(path)
        except V1Error as exc:
            migration.errors.append(str(exc))
            continue
        config = target / f"{path.stem}.yaml" if per_file else target
        folders = [str(config.parent.resolve()), str(path.parent.resolve())]
        for v1 in found:
            agent = AgentMapper(v1, installed, model_map or {}, folders).run()
            migration.agents.append(agent)
            names = seen.setdefault(config, {})
            other = names.setdefault(agent.name, agent)
            if other is not agent:
                migration.errors.append(
                    f"{v1.where()}: agent `{agent.name}` is also defined in {other.source.where()}; rename one of them"
                )
                continue
            groups.setdefault(config, []).append(agent)
    inputs = {p.resolve() for p in files}
    for config, agents in groups.items():
        migration.outputs.extend(_render(config, agents, str(source)))
    for out in migration.outputs:
        if out.path.resolve() in inputs:
            migration.errors.append(f"{out.path}: is one of the V1 files; write the V2 config elsewhere (-o)")
        elif out.path.exists() and not force:
            migration.errors.append(f"{out.path}: exists; pass --force to replace it, or -o another path")
    if migration.blocked:
        migration.outputs = []
    return migration


def _render(config: Path, agents: list[MigratedAgent], source: str) -> list[Output]:
    """The config of ``agents`` (and its tools module when one is needed)."""
    module = re.sub(r"\W", "_", config.stem) + "_v1_tools"
    if module[0].isdigit():
        module = f"_{module}"
    plans = []
    used: set[str] = set()
    for agent in agents:
        refs = agent.node.get("tools")
        for plan in agent.tools:
            if plan.wrapped:
                base = re.sub(r"\W", "_", f"{agent.name}__{plan.name}")
                attribute, n = base, 2
                while attribute in used:
                    attribute, n = f"{base}_{n}", n + 1
                used.add(attribute)
                plan.attribute = attribute
                plans.append(plan)
                refs.append(f"{module}:{attribute}")
            else:
                refs.append(plan.ref)
    doc = CommentedMap()
    doc.yaml_set_start_comment(
        f"Migrated from V1 ({source}) by robutler-kernel migrate.\n"
        f"Check: robutler-kernel check {config}    Serve: robutler-kernel serve -c {config}"
    )
    if len(agents) > 1:
        # V1's /v1/completions answered with its first agent when a client named none.
        doc["server"] = CommentedMap([("default_agent", agents[0].name)])
    doc["agents"] = CommentedMap()
    for agent in agents:
        doc["agents"][agent.name] = agent.node
        comment = _agent_comment(agent)
        if comment and agent.node:
            agent.node.yaml_set_start_comment(comment, indent=4)
    outputs = [Output(config, _dump(doc), [a.name for a in agents])]
    for agent in agents:
        try:
            _dump(agent.node).encode("utf-8")
        except Exception as exc:
            agent.findings.append(Finding(
                "error", agent.source.where(), agent.name, "(text)",
                f"holds text that cannot be written as YAML ({type(exc).__name__}: {printable(str(exc))[:120]}); "
                "fix the V1 file (a lone \\ud800 escape, a control character)",
            ))
    if plans:
        outputs.append(Output(config.parent / f"{module}.py", module_text(plans, source)))
    return outputs


def printable(text: str) -> str:
    """``text`` fit for a YAML comment: one line, printable, encodable."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text.encode("utf-8", "replace").decode("utf-8")


def _agent_comment(agent: MigratedAgent) -> str:
    lines = list(agent.source.comment)
    left = [f for f in agent.findings if f.level == "not migrated"]
    settings = [f for f in agent.findings if f.field.endswith(".settings")]
    if left:
        lines.append("Not migrated from V1:")
        lines += [f"  {f.field} ({_line(f.where)}): {f.message}" for f in left]
    for f in settings:
        lines.append(f"  when installed, add under skills: {f.message}")
    return "\n".join(printable(line) for line in lines)


def _line(where: str) -> str:
    return f"line {where.rsplit(':', 1)[1]}" if re.search(r":\d+$", where) else "V1"


def _dump(doc: Any) -> str:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    stream = io.StringIO()
    yaml.dump(doc, stream)
    return stream.getvalue()


def write(outputs: Iterable[Output]) -> list[Path]:
    """Write every output, or none: each goes to a temporary file beside its place, then
    all are moved into place; a failure on the way puts back what was there.

    :raises OSError: nothing was written (what was there is as it was).
    """
    staged: list[tuple[str, Path]] = []
    try:
        for out in outputs:
            out.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.path.parent, prefix=f".{out.path.name}.", suffix=".tmp")
            staged.append((tmp, out.path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(out.text)
    except BaseException:
        for tmp, _ in staged:
            _remove(tmp)
        raise
    placed: list[Path] = []
    backups: list[tuple[str, Path]] = []
    try:
        for tmp, final in staged:
            if final.exists():
                backup = f"{final.parent}/.{final.name}.migrate-backup"
                os.replace(final, backup)
                backups.append((backup, final))
            os.replace(tmp, final)
            placed.append(final)
    except BaseException:
        for final in placed:
            _remove(final)
        for backup, final in backups:
            os.replace(backup, final)
        for tmp, _ in staged:
            _remove(tmp)
        raise
    for backup, _ in backups:
        _remove(backup)
    importlib.invalidate_caches()  # a generated tools module is importable in this process too
    return placed


def _remove(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["DEFAULT_OUTPUT", "Migration", "Output", "installed_skills", "plan", "printable", "write"]

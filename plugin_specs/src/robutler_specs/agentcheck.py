"""The rules every agent follows, wherever its spec comes from.

An agent of the config file, a file of ``agents_dir`` and a row of a plugin's store (a
``robutler_resolve_agent`` hook) are held to the same rules, written once, here: the
kernel's config loader reports them at ``file:line``; a plugin that reads agents from
elsewhere calls :func:`agent_from_data` and gets the same messages, at its own ``source``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from .agent import AgentSpec
from .errors import ConfigError

#: Agent names that would shadow a kernel route (compared case-insensitively).
RESERVED_AGENT_NAMES: frozenset[str] = frozenset(
    {"v1", "health", "ready", "live", "agents", "metrics", "docs", "openapi.json", "favicon.ico", "static", "admin"}
)
#: What an agent name (its URL path segment) may look like (matched in full).
AGENT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: ``<provider>/<model>``; the model part may itself contain ``/`` (``openrouter/meta-llama/x``).
MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/\S+")
#: A plain-Python tool reference, ``module:function``.
TOOL_REF_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

#: Where a problem is, below the agent: ``("model", 1)`` is ``model[1]``.
KeyPath = tuple[str | int, ...]


def shown(text: str) -> str:
    """``text`` for an error line: as is, or with its unprintable characters escaped (a
    newline in a value must not split the line)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as an agent name (``None``: nothing)."""
    if not AGENT_NAME_RE.fullmatch(name):
        return "invalid agent name: use 1-64 letters, digits, `_`, `.` or `-`, starting with a letter or digit"
    if name.lower() in RESERVED_AGENT_NAMES:
        return f"`{name}` is reserved for a kernel route; reserved: {', '.join(sorted(RESERVED_AGENT_NAMES))}"
    return None


def spec_problems(spec: AgentSpec) -> list[tuple[KeyPath, str]]:
    """What the types of :class:`AgentSpec` cannot say: models look like
    ``<provider>/<model>``, tools like ``module:function``, limits are in range. Each
    problem with its key path below the agent."""
    problems: list[tuple[KeyPath, str]] = []
    for field in ("model", "allowed_models"):
        value = getattr(spec, field)
        if field == "model" and value == []:
            problems.append(((field,), "must not be an empty list"))
        for i, model in enumerate([value] if isinstance(value, str) else value):
            if not MODEL_RE.fullmatch(model):
                where: KeyPath = (field,) if isinstance(value, str) else (field, i)
                problems.append((where, f"`{shown(model)}` is not `<provider>/<model>` (e.g. `openai/gpt-4o`)"))
    for i, ref in enumerate(spec.tools):
        if not TOOL_REF_RE.fullmatch(ref):
            problems.append((("tools", i), f"`{shown(ref)}` is not a `module:function` reference"))
    if spec.max_tool_rounds < 0:
        problems.append((("max_tool_rounds",), f"must be >= 0, got {spec.max_tool_rounds}"))
    if spec.tool_timeout <= 0:
        problems.append((("tool_timeout",), f"must be > 0 seconds, got {spec.tool_timeout}"))
    return problems


def validation_problem(exc: msgspec.ValidationError, type_: Any) -> tuple[KeyPath, str]:
    """A msgspec validation error of ``type_`` as (key path, message); an unknown key gets
    the nearest known one (``did you mean``)."""
    message, _, at = str(exc).partition(" - at `$")
    sub: list[str | int] = [int(i) if i.isdigit() else f for f, i in re.findall(r"\.(\w+)|\[(\d+)\]", at.split("[...]")[0])]
    if unknown := re.fullmatch(r"Object contains unknown field `(.*)`", message):
        sub.append(unknown.group(1))
        message = "unknown key" + (_suggest(unknown.group(1), type_) if not at else "")
    return tuple(sub), message


def _suggest(key: str, type_: Any) -> str:
    if not (isinstance(type_, type) and issubclass(type_, msgspec.Struct)):
        return ""
    fields = [f.encode_name for f in msgspec.structs.fields(type_)]
    close = difflib.get_close_matches(key, fields, n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def format_key(path: KeyPath) -> str:
    """``("skills", "openai", "timeout")`` -> ``skills.openai.timeout``; ``("model", 1)`` -> ``model[1]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{shown(str(p))}" for p in path).lstrip(".")


def agent_from_data(name: str, data: Any, source: str) -> AgentSpec:
    """Validate ``data`` (one agent, in the shape of an entry of ``agents:``, as plain
    data: a JSON object, a dict) into the :class:`AgentSpec` called ``name``, by the same
    rules as the kernel's config file. ``None`` means every default. A ``name`` in
    ``data`` must equal ``name``.

    :param source: where the data came from, first on every error line
        (``agentstore table robutler_agents, agent 'bot'``).
    :raises ConfigError: one ``source: key.path: problem`` line per problem found.
    """
    problems: list[tuple[KeyPath, str]] = []
    if (problem := name_problem(name)) is not None:
        problems.append(((), problem))
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(((), f"an agent must be a mapping of its settings, got {type(data).__name__}"))
        data = {}
    if data.get("name") not in (None, "", name):
        problems.append((("name",), f"`{shown(str(data['name']))}` does not match the agent's name `{name}`; remove it or make them equal"))
    spec: AgentSpec | None = None
    try:
        spec = msgspec.convert({**data, "name": name}, AgentSpec)
    except msgspec.ValidationError as exc:
        problems.append(validation_problem(exc, AgentSpec))
    if spec is not None:
        problems.extend(spec_problems(spec))
    if problems:
        raise ConfigError("\n".join(f"{source}: {format_key(p)}: {m}" if p else f"{source}: {m}" for p, m in problems))
    assert spec is not None
    return spec


__all__ = [
    "AGENT_NAME_RE",
    "MODEL_RE",
    "RESERVED_AGENT_NAMES",
    "TOOL_REF_RE",
    "KeyPath",
    "agent_from_data",
    "format_key",
    "name_problem",
    "shown",
    "spec_problems",
    "validation_problem",
]

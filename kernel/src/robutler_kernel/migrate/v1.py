"""Reading V1 agent configurations: JSON or YAML files, one agent or several, with the line
of every key kept (ruamel.yaml's round-trip loader, for JSON too), so that every problem and
every finding can say ``file:line``.

A file holds one agent (a mapping), a list of agents, or a mapping with ``agents:`` (a list,
or agent name to agent). A file that cannot be read or parsed is one :class:`V1Error`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

#: The file name endings read as V1 configurations.
SUFFIXES = (".json", ".yaml", ".yml")


class V1Error(Exception):
    """A V1 file that cannot be read; the message starts with ``file:line``."""


@dataclass
class V1Agent:
    """One V1 agent as found in its file.

    :ivar source: the file, as the user named it.
    :ivar data: the agent's mapping (a ruamel ``CommentedMap``: lines and comments).
    :ivar stem: the file's name without its ending (the agent's name when it has none).
    :ivar yaml: whether the file is YAML (its comments and key order are kept).
    :ivar comment: the comment lines at the top of the file (for its only agent).
    """

    source: str
    data: CommentedMap
    stem: str
    yaml: bool
    comment: list[str] = field(default_factory=list)

    def where(self, node: Any = None, key: Any = None) -> str:
        """``file:line`` of ``key`` in ``node`` (default: the agent's mapping)."""
        line = line_of(self.data if node is None else node, key)
        return f"{self.source}:{line}" if line else self.source


def line_of(node: Any, key: Any = None) -> int:
    """The 1-based line of ``key`` in a ruamel ``node`` (of the node itself without a key; 0: unknown)."""
    try:
        if key is None:
            return int(node.lc.line) + 1
        if isinstance(node, CommentedSeq):
            return int(node.lc.item(key)[0]) + 1
        if isinstance(node, CommentedMap):
            return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        pass
    return 0


def v1_files(path: str | os.PathLike[str]) -> list[Path]:
    """The V1 files of ``path``: the file itself, or a folder's ``*.json``/``*.yaml``/``*.yml``
    files (not hidden ones, not in sub-folders), in name order.

    :raises V1Error: the path does not exist, or a folder holds no V1 file.
    """
    given = Path(path)
    if given.is_dir():
        found = sorted(p for p in given.iterdir() if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith("."))
        if not found:
            raise V1Error(f"{given}: no V1 agent files here (*.json, *.yaml, *.yml)")
        return found
    if not given.exists():
        raise V1Error(f"{given}: no such file or folder")
    return [given]


def read_v1(path: Path) -> list[V1Agent]:
    """The agents of one V1 file.

    :raises V1Error: ``file:line: what is wrong`` (unreadable, not JSON/YAML, not agents).
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise V1Error(f"{source}: cannot read the file: {exc}") from None
    is_json = path.suffix == ".json"
    root = _parse_json(text, source) if is_json else _parse_yaml(text, source)
    if root is None:
        raise V1Error(f"{source}:1: the file is empty; expected a V1 agent (a mapping with name, system_prompt, model...)")
    comment = _top_comment(root) if not is_json else []
    items: list[tuple[Any, Any, Any]]  # (node, its parent, its key in the parent)
    if isinstance(root, CommentedMap) and "agents" in root and "system_prompt" not in root:
        agents = root["agents"]
        if isinstance(agents, CommentedSeq):
            items = [(a, agents, i) for i, a in enumerate(agents)]
        elif isinstance(agents, CommentedMap):
            items = []
            for name, agent in agents.items():
                if isinstance(agent, CommentedMap) and "name" not in agent:
                    agent.insert(0, "name", name)
                items.append((agent, agents, name))
        else:
            raise V1Error(f"{source}:{line_of(root, 'agents')}: agents: expected a list or mapping of agents, got {_kind(agents)}")
        comment = []
    elif isinstance(root, CommentedSeq):
        items = [(a, root, i) for i, a in enumerate(root)]
        comment = []
    elif isinstance(root, CommentedMap):
        items = [(root, None, None)]
    else:
        raise V1Error(f"{source}:1: expected a V1 agent (a mapping) or a list of agents, got {_kind(root)}")
    agents_found = []
    for node, parent, key in items:
        if not isinstance(node, CommentedMap):
            line = line_of(parent, key) if parent is not None else 1
            raise V1Error(f"{source}:{line}: expected an agent (a mapping), got {_kind(node)}")
        agents_found.append(V1Agent(source, node, path.stem, not is_json, comment))
    return agents_found


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise V1Error(f"{source}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise V1Error(f"{source}: invalid YAML: {exc}") from None
    except Exception as exc:  # ruamel itself crashes on a few malformed scalars
        raise V1Error(f"{source}: invalid YAML: the parser failed with {type(exc).__name__}: {exc}") from None


def _parse_json(text: str, source: str) -> Any:
    try:
        data = json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise V1Error(f"{source}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if data is None:
        return None
    try:  # JSON is YAML: the same loader gives every key its line
        node = YAML(typ="rt").load(text)
    except Exception:
        node = None  # a duplicate key, a tab: valid JSON all the same, just without lines
    return node if node is not None else _commented(data)


def _commented(value: Any) -> Any:
    """Plain JSON data as ruamel nodes (no lines)."""
    if isinstance(value, dict):
        node = CommentedMap()
        for k, v in value.items():
            node[k] = _commented(v)
        return node
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


def _top_comment(root: Any) -> list[str]:
    tokens = getattr(getattr(root, "ca", None), "comment", None)
    if not tokens or len(tokens) < 2 or not tokens[1]:
        return []
    lines: list[str] = []
    for token in tokens[1]:
        for line in str(token.value).splitlines():
            text = line.strip()
            if text.startswith("#"):
                lines.append(text[1:].strip())
    return lines


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "nothing (null)"
    return type(value).__name__


__all__ = ["SUFFIXES", "V1Agent", "V1Error", "line_of", "read_v1", "v1_files"]

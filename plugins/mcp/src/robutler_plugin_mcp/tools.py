"""MCP tools as the agent's tools: their names, their schemas passed through, and their calls."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import msgspec

from robutler_specs import ToolSpec
from robutler_specs.jsondepth import MAX_JSON_DEPTH, too_deep

from .config import ServerConfig

#: Between a server's prefix and a tool's name: ``files__read_file``.
SEPARATOR = "__"
MAX_NAME = 64


class _Arguments(msgspec.Struct):
    arguments: dict[str, Any]


def tool_name(prefix: str, name: str) -> str:
    """``<prefix>__<name>`` within 64 letters, digits, ``_`` and ``-``: other characters
    become ``_``; a longer name is cut and ends with a hash of the whole, so it stays unique."""
    full = f"{prefix}{SEPARATOR}{name}"
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", full)
    if clean == full and len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    return f"{clean[: MAX_NAME - 9]}_{digest}"


def wanted(server: ServerConfig, name: str) -> bool:
    """Whether the server's ``allow`` / ``deny`` lists let tool ``name`` through."""
    if server.allow and not any(fnmatch.fnmatchcase(name, p) for p in server.allow):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in server.deny)


@dataclass(frozen=True)
class McpToolSpec(ToolSpec):
    """A tool of an MCP server. Its JSON schema is the server's, passed through, so the
    arguments go to the server as the model wrote them (a JSON object); the server checks
    them against its schema and says what is wrong."""

    server: str = ""
    remote_name: str = ""

    def parse_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """The model's arguments as one JSON object (``{"arguments": {...}}`` for the call)."""
        if isinstance(arguments, str):
            if too_deep(arguments) is not None:
                raise ValueError(
                    f"invalid arguments for tool {self.name!r}: JSON nested deeper than "
                    f"{MAX_JSON_DEPTH} levels; send flatter arguments"
                )
            try:
                raw = msgspec.json.decode(arguments or "{}")
            except msgspec.DecodeError as exc:
                raise ValueError(f"invalid arguments for tool {self.name!r}: {exc}") from None
        else:
            raw = arguments
        if not isinstance(raw, dict):
            raise ValueError(
                f"invalid arguments for tool {self.name!r}: expected a JSON object, got {type(raw).__name__}"
            )
        return {"arguments": raw}


def schema_of(tool: types.Tool) -> dict[str, Any]:
    """The tool's input schema as the model gets it (an object schema, as OpenAI requires)."""
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    return schema


def build_specs(
    server_name: str,
    server: ServerConfig,
    tools: Sequence[types.Tool],
    call: Callable[[str, str, dict[str, Any]], Awaitable[str]],
) -> dict[str, ToolSpec]:
    """The agent's tools for one server's listing (allow/deny applied), by name."""
    prefix = server.prefix or server_name
    specs: dict[str, ToolSpec] = {}
    for tool in tools:
        if not wanted(server, tool.name):
            continue
        name = tool_name(prefix, tool.name)

        async def run(arguments: dict[str, Any], _remote: str = tool.name) -> str:
            return await call(server_name, _remote, arguments)

        description = tool.description or tool.title or tool.name
        specs[name] = McpToolSpec(
            name=name,
            description=description,
            parameters=schema_of(tool),
            scope=server.scope,
            fn=run,
            context_param=None,
            args_type=_Arguments,
            plugin="mcp",
            is_async=True,
            server=server_name,
            remote_name=tool.name,
        )
    return specs


__all__ = ["SEPARATOR", "McpToolSpec", "build_specs", "schema_of", "tool_name", "wanted"]

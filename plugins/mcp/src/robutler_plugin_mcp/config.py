"""The ``mcp`` skill's settings (``skills: {mcp: {...}}``) and the plugin's own
(``plugins: {mcp: {...}}``)."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

_NAME = re.compile(r"[A-Za-z0-9_-]+")


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One MCP server an agent uses: a command to run (stdio) or a URL (streamable HTTP).

    :ivar command: the program to run; the server speaks MCP on its stdin/stdout.
    :ivar args: its arguments.
    :ivar env: extra environment variables for it (on top of a safe default set).
    :ivar cwd: its working directory.
    :ivar url: the server's streamable-HTTP endpoint (``https://host/mcp``), instead of a command.
    :ivar headers: HTTP headers sent with every request to ``url`` (``Authorization``...).
    :ivar prefix: the start of its tools' names (``<prefix>__<tool>``); default: the server's key.
    :ivar scope: who may see and call its tools: ``all``, ``owner`` or ``admin``.
    :ivar allow: only these tools (names or ``fnmatch`` patterns); empty: every tool.
    :ivar deny: never these tools (names or patterns), even when allowed.
    :ivar timeout: seconds one call may take (the agent's ``tool_timeout`` applies too).
    :ivar connect_timeout: seconds to start or reach the server and list its tools.
    :ivar refresh: re-list the tools when the listing is older than this many seconds
        (``None``: only when the server says they changed, ``notifications/tools/list_changed``).
    """

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    prefix: str | None = None
    scope: Literal["all", "owner", "admin"] = "all"
    allow: list[str] = []
    deny: list[str] = []
    timeout: float | None = None
    connect_timeout: float = 20.0
    refresh: float | None = None

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ValueError("give an MCP server either a command (stdio) or a url (streamable HTTP), not both")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {self.url!r}")
        if self.prefix is not None and not _NAME.fullmatch(self.prefix):
            raise ValueError(f"prefix {self.prefix!r} may hold only letters, digits, '_' and '-'")
        if self.connect_timeout <= 0 or (self.timeout is not None and self.timeout <= 0):
            raise ValueError("timeouts must be more than 0 seconds")

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command is not None else "http"


class McpConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings under ``skills: {mcp: {...}}``.

    :ivar servers: the MCP servers whose tools the agent gets, by name.
    :ivar serve: expose this agent as an MCP server at ``/{agent}/mcp`` (off by default).
    :ivar serve_tools: offer the agent's own tools there (scopes checked for the caller).
    :ivar ask_tool: the name of the tool that asks the agent itself; ``""`` for none.
    """

    servers: dict[str, ServerConfig] = {}
    serve: bool = False
    serve_tools: bool = True
    ask_tool: str = "ask"

    def __post_init__(self) -> None:
        for name in self.servers:
            if not _NAME.fullmatch(name):
                raise ValueError(f"server name {name!r} may hold only letters, digits, '_' and '-'")
        if self.ask_tool and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.ask_tool):
            raise ValueError(f"ask_tool {self.ask_tool!r} must be 1-64 letters, digits, '_' or '-'")


class PluginSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings under ``plugins: {mcp: {...}}``.

    :ivar url: the server ``robutler-kernel mcp-stdio`` connects to (``http://127.0.0.1:8000``).
    """

    url: str = "http://127.0.0.1:8000"


__all__ = ["McpConfig", "PluginSettings", "ServerConfig"]

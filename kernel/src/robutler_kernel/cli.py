"""``robutler-kernel``: serve | plugins | check | chat | new-plugin, and plugin commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from robutler_specs import ConfigError, PluginError

from .config import KernelConfig, default_config, load_config
from .kernel import Kernel


def _load(path: str | None) -> KernelConfig:
    if path is None:
        if os.path.exists("robutler.yaml"):
            return load_config("robutler.yaml")
        return default_config()
    return load_config(path)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the configured agents (or the offline default agent) on Hypercorn."""
    from .serve import serve, start_metrics_server

    config = _load(args.config)
    server = config.server
    host = args.host or server.host
    port = server.port if args.port is None else args.port
    logging.basicConfig(
        level=os.environ.get("ROBUTLER_LOG_LEVEL", server.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # HTTP client libraries log every upstream call at INFO: one line per request is
    # noise at this level, and costs throughput. Their warnings still show.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    kernel = Kernel(config)
    metrics_port = start_metrics_server(
        server.metrics_port if args.metrics_port is None else args.metrics_port, host
    )

    def ready(url: str) -> None:
        first = kernel.agent_names[0] if kernel.agent_names else "assistant"
        print(f"Robutler serving {len(kernel.agent_names)} agent(s) at {url}", flush=True)
        for name in kernel.agent_names:
            print(f"  {url}/{name}/chat/completions  ({kernel.agent(name).spec.model})", flush=True)  # type: ignore[union-attr]
        if metrics_port:
            print(f"  metrics: http://{host}:{metrics_port}/metrics", flush=True)
        body = json.dumps({"messages": [{"role": "user", "content": "Hello!"}]})
        print(f"Try:\n  curl {url}/{first}/chat/completions -H 'Content-Type: application/json' -d '{body}'", flush=True)

    asyncio.run(serve(kernel, host, port, access_log=args.access_log, ready=ready))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List installed plugins, their versions, the skills they provide and what those require."""
    kernel = Kernel(default_config(), discover=True)
    rows: list[dict[str, Any]] = []
    for name, info in sorted(kernel.registry.plugins.items()):
        skills: list[Any] = list(info.skills) or [None]
        for skill in skills:
            rows.append(
                {
                    "plugin": name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "skill": skill.name if skill else None,
                    "provider": skill.provider if skill else None,
                    "requires": list(skill.requires) if skill else [],
                    "description": skill.description if skill else "",
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no plugins installed (pip install robutler-plugin-<name>)")
        return 0
    table = [
        [
            row["plugin"],
            row["version"] or "-",
            str(row["skill"] or "-") + (f" (model {row['provider']}/...)" if row["provider"] else ""),
            ", ".join(row["requires"]) or "-",
            row["description"],
        ]
        for row in rows
    ]
    header = ["PLUGIN", "VERSION", "SKILL", "REQUIRES", "DESCRIPTION"]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(4)]
    for line in [header, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[4])
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a config file and build every agent; exit 1 with clear errors."""
    try:
        config = load_config(args.config)
        kernel = Kernel(config)
    except (ConfigError, PluginError) as exc:
        return _fail(str(exc))
    for name in kernel.agent_names:
        agent = kernel.agent(name)
        assert agent is not None
        skills = ", ".join(s.name for s in agent.skills)
        print(f"ok  {name}: model {agent.spec.model}; skills: {skills}; tools: {len(agent.tools)}")
    print(f"{args.config}: {len(kernel.agent_names)} agent(s) OK")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A streaming terminal chat with an agent: in-process, or over HTTP with ``--url``."""
    from .chat_client import chat_local, chat_remote

    messages: list[dict[str, Any]] = []
    if args.url:
        return chat_remote(args.url, args.agent, messages, once=args.message, model=args.model)
    return asyncio.run(chat_local(_load(args.config), args.agent, messages, once=args.message, model=args.model))


def cmd_new_plugin(args: argparse.Namespace) -> int:
    """Scaffold a plugin package: pyproject with the entry point, a skill, a test."""
    from pathlib import Path

    from .scaffold import create_plugin

    try:
        root = create_plugin(args.name, Path(args.dir))
    except ValueError as exc:
        return _fail(str(exc))
    print(f"created {root}\nnext: pip install -e '{root}[test]' && pytest {root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``robutler-kernel`` (plugin commands are dispatched before it)."""
    parser = argparse.ArgumentParser(
        prog="robutler-kernel",
        description="Serve AI agents over an OpenAI-compatible API. Plugins may add commands "
        "(robutler-kernel plugins lists what is installed).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve agents over HTTP (no config: an offline demo agent)")
    serve.add_argument("--config", "-c", help="YAML config (default: ./robutler.yaml if present)")
    serve.add_argument("--host", help="bind address (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", "-p", type=int, help="port (default: server.port, 8000)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus port (default: server.metrics_port, 9090)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    plugins = sub.add_parser("plugins", help="list installed plugins and their skills")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=cmd_plugins)

    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("config", help="YAML config to check")
    check.set_defaults(func=cmd_check)

    chat = sub.add_parser("chat", help="chat with an agent in the terminal (streams)")
    chat.add_argument("agent", nargs="?", default="assistant", help="agent name (default: assistant)")
    chat.add_argument("--config", "-c", help="YAML config, for an in-process chat")
    chat.add_argument("--url", help="chat with a running server instead (http://host:port)")
    chat.add_argument("--message", "-m", help="send one message and exit")
    chat.add_argument("--model", help="one of the agent's models or allowed_models (default: the agent's)")
    chat.set_defaults(func=cmd_chat)

    new = sub.add_parser("new-plugin", help="create a plugin package to start from")
    new.add_argument("name", help="plugin name, e.g. weather")
    new.add_argument("--dir", default=".", help="where to create it (default: here)")
    new.set_defaults(func=cmd_new_plugin)
    return parser


BUILTIN = {"serve", "plugins", "check", "chat", "new-plugin"}


def plugin_commands(registry: Any = None) -> dict[str, tuple[str, Any]]:
    """Sub-commands plugins add through ``robutler_commands``: name -> (plugin, callable).
    Installed plugins are discovered unless a ``PluginRegistry`` is given."""
    from .plugins import PluginRegistry

    if registry is None:
        registry = PluginRegistry()
        registry.discover()
    commands: dict[str, tuple[str, Any]] = {}
    for name, info in registry.plugins.items():
        provider = getattr(info.module, "robutler_commands", None)
        for command, fn in ((provider() if provider else None) or {}).items():
            if command not in BUILTIN:
                commands[command] = (name, fn)
    return commands


def run_plugin_command(plugin: str, fn: Any, argv: list[str]) -> int:
    """Run a plugin's command with its ``plugins.<plugin>`` settings from ``--config``."""
    config_path = None
    if "--config" in argv[:-1]:
        at = argv.index("--config")
        config_path = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    settings = _load(config_path).plugins.get(plugin, {})
    return int(fn(argv, settings) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robutler-kernel`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and not argv[0].startswith("-") and argv[0] not in BUILTIN:
            commands = plugin_commands()
            if argv[0] in commands:
                plugin, fn = commands[argv[0]]
                return run_plugin_command(plugin, fn, argv[1:])
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except (ConfigError, PluginError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

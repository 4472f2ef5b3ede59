"""``robutler-kernel``: serve | plugins | check | chat | new-plugin | migrate, and plugin commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from robutler_specs import ConfigError, PluginError

from . import eventloop
from .config import KernelConfig, ServerConfig, default_config, load_config
from .kernel import Kernel

#: The config file used when a command is given none.
DEFAULT_CONFIG_FILE = "robutler.yaml"


def _load(path: str | None) -> KernelConfig:
    """The config at ``path``; else ``./robutler.yaml``; else the offline demo config."""
    if path is None:
        if os.path.exists(DEFAULT_CONFIG_FILE):
            return load_config(DEFAULT_CONFIG_FILE)
        return default_config()
    return load_config(path)


def _kernel(path: str | None, config: KernelConfig | None = None) -> Kernel:
    """The kernel of ``path`` (see :func:`_load`; ``config``: already loaded from it).
    Without any config the demo agent runs on the ``scripted`` model: when that plugin is
    missing, say what to do instead."""
    if config is None:
        config = _load(path)
    try:
        return Kernel(config)
    except PluginError as exc:
        if path is None and not os.path.exists(DEFAULT_CONFIG_FILE) and "scripted" in str(exc):
            raise PluginError(
                f"no config given (--config FILE, or ./{DEFAULT_CONFIG_FILE}), so the offline demo agent would "
                "run, and it needs the scripted model: pass your config, or pip install robutler-plugin-scripted"
            ) from exc
        raise


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def configure_logging(server: ServerConfig, worker: int | None = None) -> None:
    """The process's logging at ``ROBUTLER_LOG_LEVEL`` or ``server.log_level``; a worker of
    ``serve --workers`` names itself in every line."""
    where = "" if worker is None else f"[worker {worker}] "
    logging.basicConfig(
        level=os.environ.get("ROBUTLER_LOG_LEVEL", server.log_level).upper(),
        format=f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s",
    )
    # HTTP client libraries log every upstream call at INFO: one line per request is
    # noise at this level, and costs throughput. Their warnings still show.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the configured agents (or the offline default agent) on Hypercorn."""
    from .serve import ListenError, serve, start_metrics_server

    config = _load(args.config)
    server = config.server
    host = args.host or server.host
    port = server.port if args.port is None else args.port
    workers = server.workers if args.workers is None else args.workers
    # With workers, the supervisor imports no plugin (each worker builds its kernel, and a
    # worker that cannot start stops the server with its error): it stays small.
    kernel = _kernel(args.config, config) if workers == 1 else None
    configure_logging(server)
    wanted_metrics_port = server.metrics_port if args.metrics_port is None else args.metrics_port

    def banner(url: str, metrics_port: int | None) -> None:
        names = kernel.agent_names if kernel is not None else list(config.agents)
        first = names[0] if names else "assistant"
        print(f"Robutler serving {len(names)} agent(s) at {url}", flush=True)
        for name in names:
            print(f"  {url}/{name}/chat/completions  ({config.agents[name].model})", flush=True)
        if metrics_port:
            print(f"  metrics: http://{host}:{metrics_port}/metrics", flush=True)
        if workers > 1:
            print(f"  {workers} worker processes", flush=True)
        body = json.dumps({"messages": [{"role": "user", "content": "Hello!"}]})
        print(f"Try:\n  curl {url}/{first}/chat/completions -H 'Content-Type: application/json' -d '{body}'", flush=True)

    if workers > 1:
        from .workers import WorkersFailed, supervise

        try:
            return supervise(args.config, host=host, port=port, workers=workers, metrics_port=wanted_metrics_port,
                             access_log=args.access_log, ready=banner)
        except (ListenError, WorkersFailed) as exc:
            return _fail(str(exc))
    assert kernel is not None
    metrics_port = start_metrics_server(wanted_metrics_port, host)
    try:
        eventloop.run(serve(kernel, host, port, access_log=args.access_log, ready=lambda url: banner(url, metrics_port)))
    except ListenError as exc:
        return _fail(str(exc))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List installed plugins, their versions, the skills they provide and what those require.

    Only the plugins are loaded (no agent is built), so this works whatever is installed."""
    from .plugins import PluginRegistry

    registry = PluginRegistry()
    registry.discover()
    rows: list[dict[str, Any]] = []
    for name, info in sorted(registry.plugins.items()):
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
    """Validate a config file against the installed plugins and build every agent; exit 1
    listing every problem (file:line: key: what), in file order."""
    from .check import check_file

    if args.file and args.config and args.file != args.config:
        return _fail(f"two config files given ({args.file} and --config {args.config}); check one at a time")
    path = args.file or args.config or (DEFAULT_CONFIG_FILE if os.path.exists(DEFAULT_CONFIG_FILE) else None)
    if path is None:
        return _fail(f"no config file to check: robutler-kernel check FILE (or -c FILE; default ./{DEFAULT_CONFIG_FILE})")
    report = check_file(path)
    if not report.ok:
        for line in report.errors:
            print(line, file=sys.stderr)
        count = len(report.errors)
        print(f"{path}: {count} problem{'s' if count > 1 else ''}", file=sys.stderr)
        return 1
    for line in report.agents:
        print(f"ok  {line}")
    print(f"{path}: {len(report.agents)} agent(s) OK")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A streaming terminal chat with an agent: in-process, or over HTTP with ``--url``."""
    from .chat_client import chat_local, chat_remote

    messages: list[dict[str, Any]] = []
    if args.url:
        return chat_remote(args.url, args.agent, messages, once=args.message, model=args.model)
    return asyncio.run(chat_local(_kernel(args.config), args.agent, messages, once=args.message, model=args.model))


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def build_parser(commands: Mapping[str, tuple[str, Any]] | None = None, note: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``robutler-kernel``.

    :param commands: the plugins' commands (:func:`plugin_commands`): listed in the help;
        they are dispatched before this parser runs, with their own arguments.
    :param note: shown at the end of the help (why plugin commands are missing).
    """
    parser = argparse.ArgumentParser(
        prog="robutler-kernel",
        description="Serve AI agents over an OpenAI-compatible API. Plugins may add commands "
        "(robutler-kernel plugins lists what is installed).",
        epilog=note,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve agents over HTTP (no config: an offline demo agent)")
    serve.add_argument("--config", "-c", help="YAML config (default: ./robutler.yaml if present)")
    serve.add_argument("--host", help="bind address (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", "-p", type=int, help="port (default: server.port, 8000)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus port (default: server.metrics_port, 9090)")
    serve.add_argument("--workers", "-w", type=_positive, metavar="N",
                       help="worker processes sharing the port, each with its own kernel (default: server.workers, 1)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    plugins = sub.add_parser("plugins", help="list installed plugins and their skills")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=cmd_plugins)

    check = sub.add_parser("check", help="validate a config file against the installed plugins")
    check.add_argument("file", nargs="?", metavar="CONFIG", help="YAML config to check (default: ./robutler.yaml)")
    check.add_argument("--config", "-c", help="the same, as an option")
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

    from .migrate.command import add_parser as add_migrate

    add_migrate(sub)

    for name, (plugin, fn) in sorted((commands or {}).items()):
        summary = ((getattr(fn, "__doc__", None) or "").strip().splitlines() or [""])[0].rstrip(".")
        sub.add_parser(name, add_help=False, help=f"{summary or 'a command'} (from plugin {plugin})")
    return parser


BUILTIN = {"serve", "plugins", "check", "chat", "new-plugin", "migrate"}


def plugin_commands(registry: Any = None) -> dict[str, tuple[str, Any]]:
    """Sub-commands plugins add through ``robutler_commands``: name -> (plugin, callable).
    Installed plugins are discovered unless a ``PluginRegistry`` is given."""
    from .plugins import PluginRegistry

    if registry is None:
        registry = PluginRegistry()
        registry.discover()
    from .hooks import KernelHookCaller

    commands: dict[str, tuple[str, Any]] = {}
    for plugin, provided in KernelHookCaller(registry.pm).robutler_commands().items():
        for command, fn in provided.items():
            if command not in BUILTIN:
                commands[command] = (plugin, fn)
    return commands


def split_config_option(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take ``--config F``, ``--config=F``, ``-c F`` or ``-cF`` out of ``argv`` (anywhere
    before a ``--``): returns the file and the other arguments.

    :raises ConfigError: the option is given without a file.
    """
    path: str | None = None
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in ("--config", "-c"):
            if i + 1 >= len(args):
                raise ConfigError(f"{arg} needs a file: {arg} robutler.yaml")
            path = args[i + 1]
            i += 2
            continue
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        elif arg.startswith("-c") and not arg.startswith("--") and len(arg) > 2:
            path = arg[2:]
        else:
            rest.append(arg)
        i += 1
    return path, rest


def run_plugin_command(plugin: str, fn: Any, argv: list[str]) -> int:
    """Run a plugin's command with its ``plugins.<plugin>`` settings from the config
    (``-c F``, ``--config F`` or ``--config=F``; default ``./robutler.yaml``)."""
    config_path, argv = split_config_option(argv)
    settings = _load(config_path).plugins.get(plugin, {})
    return int(fn(argv, settings) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robutler-kernel`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        commands: dict[str, tuple[str, Any]] = {}
        note = None
        if not argv or argv[0] not in BUILTIN:  # a plugin's command, or the help that lists them
            try:
                commands = plugin_commands()
            except PluginError as exc:
                if argv and not argv[0].startswith("-"):
                    raise
                note = f"(plugin commands are not listed: {exc})"
            if argv and argv[0] in commands:
                plugin, fn = commands[argv[0]]
                return run_plugin_command(plugin, fn, argv[1:])
        args = build_parser(commands, note).parse_args(argv)
        return int(args.func(args) or 0)
    except (ConfigError, PluginError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

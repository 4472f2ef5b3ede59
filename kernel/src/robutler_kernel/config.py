"""The kernel's configuration: YAML with ``${ENV}`` substitution, validated into msgspec Structs.

Every error is a :class:`~robutler_specs.ConfigError` whose lines read
``file:line: key.path: what is wrong``; as many errors as can be found are reported at once
(at least the first per section and per agent). See ``docs/configuration.md``.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

import msgspec
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from robutler_specs import AgentSpec, ConfigError
from robutler_specs.agentcheck import (
    AGENT_NAME_RE,
    MODEL_RE,
    RESERVED_AGENT_NAMES,
    TOOL_REF_RE,
    format_key,
    name_problem,
    shown,
    spec_problems,
    validation_problem,
)

from .envvars import expand_env, is_single_reference

#: The top-level keys of a configuration file.
SECTIONS: tuple[str, ...] = ("server", "agents", "agents_dir", "plugins")

#: A TCP port; ``0`` asks the OS for a free one.
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
_KeyPath = tuple[str | int, ...]


class HealthSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Health of the host and how often it is checked (``server.health:``).

    :ivar disk_path: the folder whose file system is checked (the data folder).
    :ivar disk_max_percent: the disk check fails above this use of ``disk_path``'s file system.
    :ivar memory_max_percent: the memory check fails above this use of the host's memory.
    :ivar host_required: a failing disk or memory check makes ``/ready`` answer 503; by
        default they only inform (``/health/detailed`` says ``degraded``).
    :ivar interval: seconds between background runs of every check by a served kernel
        (they set ``robutler_agent_health``); ``0`` runs them only when asked.
    :ivar timeout: seconds one check may take.
    """

    disk_path: str = "."
    disk_max_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 90.0
    memory_max_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 90.0
    host_required: bool = False
    interval: Annotated[float, msgspec.Meta(ge=0)] = 15.0
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 5.0


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The HTTP server (``server:`` section).

    :ivar host: interface to bind.
    :ivar port: HTTP port; ``0`` picks a free one.
    :ivar metrics_port: Prometheus ``/metrics`` port; ``None`` (``null``) disables it.
    :ivar workers: worker processes sharing the port, each with its own kernel
        (``serve --workers``; see ``docs/deployment.md``).
    :ivar max_body_bytes: largest accepted request body (413 above it).
    :ivar request_timeout: seconds one request may take in total.
    :ivar cors_origins: origins allowed by CORS (``"*"``: any); empty means CORS is off.
        Answered in the pure-ASGI front layer, preflight ``OPTIONS`` included.
    :ivar log_level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
    :ivar responses_ttl: seconds a stored response (``POST /v1/responses`` with ``store``)
        is kept for ``GET /v1/responses/{id}`` and ``previous_response_id``; 30 days, as OpenAI.
    :ivar max_concurrent_requests: requests one process serves at once (a stream counts
        until its last byte); beyond it a request is answered at once with 503 and
        ``Retry-After``, never queued. Health routes are exempt. ``None`` (``null``): no limit.
    :ivar backlog: the listen backlog: connections the OS queues before the server
        accepts them (capped by the OS: ``net.core.somaxconn`` on Linux).
    :ivar security_headers: add ``X-Content-Type-Options``, ``Referrer-Policy`` and a
        ``Content-Security-Policy`` (unless the answer sets its own) to every answer.
    :ivar strict_transport_security: the ``Strict-Transport-Security`` value to send on
        every answer (``max-age=31536000; includeSubDomains``); ``None``: not sent (only
        set it when every client reaches the server over HTTPS).
    :ivar health: host checks (disk, memory) and the background check interval.
    :ivar default_agent: the agent that answers a ``POST /v1/completions`` naming no
        ``model`` (V1 clients sent none); ``None``: the only agent, else a 400 listing them.
    """

    host: str = "127.0.0.1"
    port: Port = 8000
    metrics_port: Port | None = 9090
    workers: Annotated[int, msgspec.Meta(ge=1)] = 1
    max_body_bytes: Annotated[int, msgspec.Meta(gt=0)] = 1048576
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    cors_origins: list[str] = []
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    responses_ttl: Annotated[float, msgspec.Meta(gt=0)] = 2592000.0
    max_concurrent_requests: Annotated[int, msgspec.Meta(ge=1)] | None = 16384
    backlog: Annotated[int, msgspec.Meta(ge=1)] = 4096
    security_headers: bool = True
    strict_transport_security: str | None = None
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)
    default_agent: str | None = None


class KernelConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration file.

    :ivar server: the HTTP server.
    :ivar agents: agent name (its URL path) to its spec; ``spec.name`` equals the key.
    :ivar plugins: kernel-level settings per plugin name, free-form (the plugin validates them).
    :ivar agents_dir: a folder of agent files (``<name>.yaml``, one agent each), loaded on
        their first request and reloaded when they change; relative to ``base_dir``.
    :ivar base_dir: the folder of the file the config was read from (``None`` for a config
        built in code); ``tools: ["module:function"]`` are also looked up there. Not a key of
        the file.
    """

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    agents: dict[str, AgentSpec] = {}
    plugins: dict[str, dict[str, Any]] = {}
    agents_dir: str | None = None
    base_dir: str | None = None


def load_config(path: str | os.PathLike[str]) -> KernelConfig:
    """Read, substitute and validate the YAML file at ``path`` (env from ``os.environ``).

    :raises ConfigError: the file cannot be read, is not valid YAML, or does not validate.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{os.fspath(path)}: cannot read the configuration file: {exc}") from None
    config = parse_config(text, source=os.fspath(path))
    return msgspec.structs.replace(config, base_dir=os.path.dirname(os.path.abspath(path)))


def parse_config(text: str, source: str = "<config>", env: Mapping[str, str] | None = None) -> KernelConfig:
    """Parse YAML ``text``, substitute ``${...}`` from ``env`` (default ``os.environ``), validate.

    :param source: the file name used in error messages.
    :raises ConfigError: with ``source:line: key.path: problem`` lines, every problem found
        (an unset variable does not hide the other problems).
    """
    loader, data = read_tree(text, source, os.environ if env is None else env)
    return loader.validate(data)


def read_tree(text: str, source: str, env: Mapping[str, str]) -> tuple[_Loader, Any]:
    """Parse YAML ``text`` into plain data with ``${...}`` substituted, and the loader that
    knows every key's line and holds the problems found so far (``robutler-kernel check``
    goes on from here).

    :raises ConfigError: the text is not valid YAML (nothing else can be checked then).
    """
    try:
        node = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError(_yaml_error(exc, source)) from None
    except Exception as exc:  # ruamel itself crashes on a few malformed scalars (``-_``: IndexError)
        raise ConfigError(f"{source}: invalid YAML: the parser failed with {type(exc).__name__}: {exc}") from None
    loader = _Loader(source, env)
    loader.lines[()] = node.lc.line + 1 if isinstance(node, (CommentedMap, CommentedSeq)) else 1
    data = loader.plain(node, ())
    return loader, {} if data is None else data


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> KernelConfig:
    """Validate already-parsed ``data`` exactly as a file would be (no ``${...}``, no line numbers)."""
    return _Loader(source, {}).validate(data)


def parse_agent_file(text: str, name: str, source: str, env: Mapping[str, str] | None = None) -> AgentSpec:
    """Parse one agent file of ``agents_dir`` (the shape of one entry of ``agents:``) into
    the agent called ``name`` (its file name): the same ``${...}`` substitution and rules
    as the config file, errors at ``source:line: key.path``. An empty file is an agent
    with every default; a ``name:`` in the file must equal ``name``.

    :raises ConfigError: every problem found.
    """
    loader, data = read_tree(text, source, os.environ if env is None else env)
    spec = loader.agent(name, data, (), owner="file name")
    loader.raise_errors()
    assert spec is not None
    return spec


def default_config() -> KernelConfig:
    """The configuration used without a file: one offline ``assistant`` agent on ``scripted/echo``."""
    agent = AgentSpec(
        name="assistant",
        description="A friendly offline demo agent",
        instructions="You are a helpful assistant.",
        model="scripted/echo",
        skills={},
    )
    return KernelConfig(server=ServerConfig(), agents={"assistant": agent}, plugins={})


class _Loader:
    """One load: the line of every key, which values were a lone ``${...}``, the errors found."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source, self.env = source, env
        self.lines: dict[_KeyPath, int] = {}
        self.refs: set[_KeyPath] = set()
        self.errors: list[tuple[int, str]] = []  # (line, message): reported in file order
        # Values already reported (an unset ``${VAR}``, a YAML tag): a type error at the same
        # key would only repeat it, so none is reported.
        self.reported: set[_KeyPath] = set()

    def line(self, path: _KeyPath) -> int:
        """The line of ``path``, or of its nearest parent in the file (0: none)."""
        return next((self.lines[path[:i]] for i in range(len(path), -1, -1) if path[:i] in self.lines), 0)

    def error(self, path: _KeyPath, message: str) -> None:
        if path in self.reported:
            return
        # A key that is not in the file (a default, a merged key) is reported at its nearest parent.
        line = self.line(path)
        location = f"{self.source}:{line}" if line else self.source
        key = format_key(path)
        message = shown(message)  # one line per problem, whatever the file's text holds
        self.errors.append((line, f"{location}: {key}: {message}" if key else f"{location}: {message}"))

    def raise_errors(self) -> None:
        if self.errors:
            raise ConfigError("\n".join(message for _, message in sorted(self.errors, key=lambda e: e[0])))

    def plain(self, node: Any, path: _KeyPath) -> Any:
        """The ruamel tree as plain dicts, lists and scalars, with ``${...}`` substituted."""
        if isinstance(node, CommentedMap | CommentedSeq):
            # ``lc.data`` holds (line, column, ...) per key/index; merged (``<<``) keys have none
            # of their own, so errors under them are reported at the parent's line.
            for key, position in (node.lc.data or {}).items():
                self.lines[(*path, key)] = position[0] + 1
            if isinstance(node, CommentedSeq):
                return [self.plain(value, (*path, i)) for i, value in enumerate(node)]
            return {key: self.plain(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, TaggedScalar):
            self.error(path, f"unsupported YAML tag `{node.tag.value}`")
            self.reported.add(path)
            return None
        elif isinstance(node, str):
            if is_single_reference(node):
                self.refs.add(path)
            try:
                return expand_env(str(node), self.env)
            except ConfigError as exc:
                self.error(path, str(exc))
                self.reported.add(path)
        elif isinstance(node, bool | ScalarBoolean):  # ruamel's scalar subclasses to plain types
            return bool(node)
        elif isinstance(node, float):
            return float(node)
        elif isinstance(node, int):
            return int(node)
        return node

    def validate(self, data: Any) -> KernelConfig:
        """Check ``data`` section by section, collecting errors, into a :class:`KernelConfig`.

        :raises ConfigError: every problem found, this one's and earlier ones (``${...}``).
        """
        config = self.sections(data)
        self.raise_errors()
        return config

    def sections(self, data: Any) -> KernelConfig:
        """Check ``data`` section by section; what is valid is returned, problems are kept in
        :attr:`errors` (an agent or plugin with a problem is left out)."""
        data = _as_data(data)
        expected = ", ".join(f"`{k}`" for k in SECTIONS)
        if not isinstance(data, Mapping):
            self.error((), f"the configuration must be a mapping with {expected}, got {_kind(data)}")
            data = {}
        for key in data:
            if key not in SECTIONS:
                close = difflib.get_close_matches(str(key), SECTIONS, n=1)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                self.error((key,), f"unknown key{hint}; expected {expected}")
        server = self.convert(_as_data(data.get("server")), ServerConfig, ("server",))
        agents = {
            name: agent
            for name, raw in self.mapping(data.get("agents"), ("agents",)).items()
            if (agent := self.agent(name, raw)) is not None
        }
        plugins = {
            name: value
            for name, raw in self.mapping(data.get("plugins"), ("plugins",)).items()
            if (value := self.convert(_as_data(raw), dict[str, Any], ("plugins", name))) is not None
        }
        agents_dir = self.convert(data.get("agents_dir"), str | None, ("agents_dir",))
        if agents_dir == "":
            self.error(("agents_dir",), "must not be empty; leave the key out for no agents folder")
            agents_dir = None
        return KernelConfig(server=server or ServerConfig(), agents=agents, plugins=plugins, agents_dir=agents_dir)

    def mapping(self, value: Any, path: _KeyPath) -> Mapping[Any, Any]:
        if value is None or isinstance(value, Mapping):
            return value or {}
        self.error(path, f"expected a mapping, got {_kind(value)}")
        return {}

    def agent(self, name: Any, raw: Any, path: _KeyPath | None = None, *, owner: str = "agent's key") -> AgentSpec | None:
        """Check one agent (``raw``, plain data) called ``name``; its problems are recorded
        under ``path`` (default ``agents.<name>``; ``()`` for an agent file, whose
        ``owner`` of the name is its file name)."""
        path = ("agents", name) if path is None else path
        if not isinstance(name, str):
            self.error(path, f"agent names must be strings, got {_kind(name)}; quote it: `'{name}':`")
            return None
        if (problem := name_problem(name)) is not None:
            self.error(path, problem)
        raw = _as_data(raw)
        if isinstance(raw, Mapping) and raw.get("name") not in (None, "", name):
            self.error((*path, "name"), f"`{shown(str(raw['name']))}` does not match the {owner} `{name}`; remove it or make them equal")
        spec: AgentSpec | None = self.convert({**raw, "name": name} if isinstance(raw, Mapping) else raw, AgentSpec, path)
        if spec is None:
            return None
        for where, message in spec_problems(spec):
            self.error((*path, *where), message)
        return spec

    def convert(self, value: Any, type_: Any, path: _KeyPath, *, strict: bool = True) -> Any:
        """``msgspec.convert`` (strict unless told) after lone ``${...}`` values took their
        field's type; a problem is recorded at its key's line and ``None`` returned."""
        try:
            return msgspec.convert(self.coerce(value, type_, path), type_, strict=strict)
        except msgspec.ValidationError as exc:
            sub, message = validation_problem(exc, type_)
            self.error((*path, *sub), message)
            return None

    def coerce(self, value: Any, type_: Any, path: _KeyPath) -> Any:
        """Convert the lone ``${...}`` strings under ``value`` to the type their field needs."""
        if isinstance(value, str) and path in self.refs:
            try:
                return msgspec.convert(value, type_, strict=False)
            except msgspec.ValidationError:
                return value  # the strict conversion reports it
        if isinstance(value, Mapping):
            return {k: self.coerce(v, _child(type_, dict, k), (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.coerce(v, _child(type_, list, i), (*path, i)) for i, v in enumerate(value)]
        return value


@cache
def _fields(type_: type[msgspec.Struct]) -> dict[str, Any]:
    return {f.encode_name: f.type for f in msgspec.structs.fields(type_)}


def _child(type_: Any, container: type, key: Any) -> Any:
    """The type of ``type_``'s item ``key`` when ``type_`` holds a ``container``; ``Any`` if unknown."""
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin is Annotated:
        return _child(args[0], container, key)
    if origin in (typing.Union, types.UnionType):
        return next((c for a in args if (c := _child(a, container, key)) is not Any), Any)
    if container is dict and isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return _fields(type_).get(key, Any)
    if container is dict and origin is dict:
        return args[1]
    return args[0] if container is list and origin is list else Any


def _as_data(value: Any) -> Any:
    """``None`` (``server:`` with nothing under it) means all defaults; a Struct given from code
    (``AgentSpec(...)`` in :func:`config_from_dict`) is read as its fields."""
    if value is None:
        return {}
    return msgspec.structs.asdict(value) if isinstance(value, msgspec.Struct) else value


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


def _yaml_error(exc: YAMLError, source: str) -> str:
    if not isinstance(exc, MarkedYAMLError) or exc.problem_mark is None:
        return f"{source}: invalid YAML: {exc}"
    context = ""
    if exc.context and exc.context_mark is not None:
        context = f" ({exc.context} started at line {exc.context_mark.line + 1})"
    return f"{source}:{exc.problem_mark.line + 1}: invalid YAML: {exc.problem}{context}"


__all__ = [
    "AGENT_NAME_RE",
    "MODEL_RE",
    "RESERVED_AGENT_NAMES",
    "SECTIONS",
    "TOOL_REF_RE",
    "KernelConfig",
    "ServerConfig",
    "config_from_dict",
    "default_config",
    "expand_env",
    "load_config",
    "parse_agent_file",
    "parse_config",
]

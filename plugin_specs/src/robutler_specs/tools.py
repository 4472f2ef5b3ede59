"""Decorators that turn skill methods and plain functions into tools, prompts, handoffs
and HTTP endpoints, and the :class:`ToolSpec` the kernel runs.

A tool's JSON schema is built from its type hints (through msgspec, so nested Structs,
enums, ``Literal`` and optional values all work) and its docstring: the first paragraph
is the description, and ``Args:`` (Google style) or ``:param x:`` lines describe
parameters. A parameter annotated :class:`~robutler_specs.RequestContext` is injected by
the kernel and never shown to the model.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, TypeVar, get_type_hints, overload

import msgspec

from .jsondepth import MAX_JSON_DEPTH, too_deep
from .wire import FunctionDefinition, ToolDefinition

Scope = Literal["all", "owner", "admin"]
SCOPES: tuple[str, ...] = ("all", "owner", "admin")

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_ATTR = "__robutler_tool__"
_PRICING_ATTR = "__robutler_pricing__"
_PROMPT_ATTR = "__robutler_prompt__"
_HANDOFF_ATTR = "__robutler_handoff__"
_HTTP_ATTR = "__robutler_http__"


@dataclass(frozen=True)
class Pricing:
    """What a tool costs: ``credits`` for each ``per`` (``"call"`` by default)."""

    credits: float
    per: str = "call"


@dataclass(frozen=True)
class ToolSpec:
    """A tool ready to list to the model and to run.

    :ivar name: the name the model calls.
    :ivar description: what the tool does, for the model.
    :ivar parameters: the JSON schema of its arguments.
    :ivar scope: who may see and call it: ``all``, ``owner`` or ``admin``.
    :ivar fn: the callable (bound when it is a skill method).
    :ivar context_param: the parameter that receives the ``RequestContext``, if any.
    :ivar args_type: the msgspec Struct arguments are validated into.
    :ivar pricing: the ``@pricing`` of the tool, if any.
    :ivar plugin: the plugin (skill name) that provides it; ``None`` for config tools.
    :ivar is_handoff: calling it hands the conversation off (see ``@handoff``).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    scope: str
    fn: Callable[..., Any]
    context_param: str | None
    args_type: type[msgspec.Struct]
    pricing: Pricing | None = None
    plugin: str | None = None
    is_handoff: bool = False
    is_async: bool = False
    definition: ToolDefinition = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "definition",
            ToolDefinition(
                function=FunctionDefinition(
                    name=self.name, description=self.description, parameters=self.parameters
                )
            ),
        )

    def with_plugin(self, plugin: str | None) -> ToolSpec:
        """A copy stamped with the plugin that provides it."""
        return replace(self, plugin=plugin)

    def parse_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Validate the model's arguments (a JSON string or a dict) into keyword arguments.

        Raises ``ValueError`` with a message the model can act on when they do not fit.
        """
        try:
            if isinstance(arguments, str):
                if too_deep(arguments) is not None:
                    raise ValueError(
                        f"invalid arguments for tool {self.name!r}: JSON nested deeper than "
                        f"{MAX_JSON_DEPTH} levels; send flatter arguments"
                    )
                raw = msgspec.json.decode(arguments or "{}")
            else:
                raw = arguments
            if not isinstance(raw, dict):
                raise ValueError(
                    f"invalid arguments for tool {self.name!r}: expected a JSON object, "
                    f"got {type(raw).__name__}"
                )
            value = msgspec.convert(raw, self.args_type, strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ValueError(f"invalid arguments for tool {self.name!r}: {exc}") from None
        return {f: getattr(value, f) for f in self.args_type.__struct_fields__}


@dataclass(frozen=True)
class _ToolInfo:
    name: str | None
    description: str | None
    scope: str


@dataclass(frozen=True)
class PromptInfo:
    """``@prompt`` metadata: the fragment's ``scope`` and ``priority`` (lower comes first)."""

    scope: str = "all"
    priority: int = 50


@dataclass(frozen=True)
class HandoffInfo:
    """``@handoff`` metadata."""

    name: str | None
    description: str | None
    scope: str


@dataclass(frozen=True)
class HttpInfo:
    """``@http`` metadata: the sub-path under ``/{agent}/`` and its methods."""

    path: str
    methods: tuple[str, ...]
    scope: str


def _check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, scope: Scope = "all"
) -> Callable[[F], F]: ...
def tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    scope: Scope = "all",
) -> Any:
    """Mark a skill method or a plain function as a tool the model may call.

    Use bare (``@tool``) or with options (``@tool(name="weather", scope="owner")``).
    Sync tools run in a worker thread; async tools on the event loop.

    :param name: the tool's name for the model; defaults to the function name.
    :param description: defaults to the docstring's first paragraph.
    :param scope: who may see and call it: ``"all"``, ``"owner"`` or ``"admin"``.
    """
    info = _ToolInfo(name, description, _check_scope(scope))

    def mark(f: F) -> F:
        setattr(f, _TOOL_ATTR, info)
        return f

    return mark(fn) if fn is not None else mark


def pricing(credits: float, per: str = "call") -> Callable[[F], F]:
    """Attach a price to a tool: ``credits`` charged for each ``per`` (default ``"call"``).

    Works above or below ``@tool``; the payments skill reads it.
    """
    if credits < 0:
        raise ValueError("credits must not be negative")
    price = Pricing(float(credits), per)

    def mark(f: F) -> F:
        setattr(f, _PRICING_ATTR, price)
        return f

    return mark


def prompt(*, scope: Scope = "all", priority: int = 50) -> Callable[[F], F]:
    """Mark a skill method (sync or async, taking ``ctx`` or nothing) that returns a
    system-prompt fragment, or ``None`` for none. Fragments are ordered by ``priority``.
    """
    info = PromptInfo(_check_scope(scope), priority)

    def mark(f: F) -> F:
        setattr(f, _PROMPT_ATTR, info)
        return f

    return mark


def handoff(
    *, name: str | None = None, description: str | None = None, scope: Scope = "all"
) -> Callable[[F], F]:
    """Mark a skill method as a handoff: the model sees it as a tool, and when it calls
    it the kernel runs ``before_handoff``, the method, then ``after_handoff``; the
    method's result becomes the final answer of the turn (the conversation is handed off).
    """
    info = HandoffInfo(name, description, _check_scope(scope))

    def mark(f: F) -> F:
        setattr(f, _HANDOFF_ATTR, info)
        return f

    return mark


def http(
    path: str, methods: tuple[str, ...] | list[str] = ("GET",), *, scope: Scope = "all"
) -> Callable[[F], F]:
    """Mark a skill method as an HTTP endpoint served at ``/{agent}/{path}``.

    The method is called as ``method(ctx, request)`` where ``request`` is an
    :class:`~robutler_specs.HttpRequest`; it returns a JSON-serialisable value
    (sent as ``200 application/json``) or raises a ``RequestError``.
    """
    info = HttpInfo(path.strip("/"), tuple(m.upper() for m in methods), _check_scope(scope))

    def mark(f: F) -> F:
        setattr(f, _HTTP_ATTR, info)
        return f

    return mark


def prompt_info(fn: Any) -> PromptInfo | None:
    """The ``@prompt`` metadata of ``fn``, or ``None``."""
    return getattr(fn, _PROMPT_ATTR, None)


def http_info(fn: Any) -> HttpInfo | None:
    """The ``@http`` metadata of ``fn``, or ``None``."""
    return getattr(fn, _HTTP_ATTR, None)


def is_tool(fn: Any) -> bool:
    """Whether ``fn`` is marked with ``@tool`` or ``@handoff``."""
    return hasattr(fn, _TOOL_ATTR) or hasattr(fn, _HANDOFF_ATTR)


_PARAM_LINE = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?):\s*$")
_GOOGLE_ARG = re.compile(r"^\s+(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and per-parameter descriptions.

    Understands Google style (``Args:`` then ``name: text``, continuation lines
    indented deeper) and Sphinx style (``:param name: text``).
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        sphinx = _PARAM_LINE.match(line)
        if sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            section = "sphinx"
            continue
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
            current = None
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            arg = _GOOGLE_ARG.match(line)
            if arg and (len(line) - len(line.lstrip())) <= 4:
                current = arg.group(1).lstrip("*")
                params[current] = arg.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
        elif section == "sphinx" and current and line.startswith((" ", "\t")) and line.strip():
            params[current] = f"{params[current]} {line.strip()}"
        elif section == "sphinx" and not line.strip():
            current = None
    text = "\n".join(description).strip()
    first_paragraph = text.split("\n\n", 1)[0].replace("\n", " ").strip()
    return first_paragraph, params


def _is_context(annotation: Any) -> bool:
    from .context import RequestContext

    return annotation is RequestContext or (
        isinstance(annotation, str) and annotation.split(".")[-1] == "RequestContext"
    )


def build_tool_spec(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    scope: str = "all",
    plugin: str | None = None,
    is_handoff: bool = False,
) -> ToolSpec:
    """Build the :class:`ToolSpec` of a callable (bound methods included).

    Reads ``@tool`` / ``@handoff`` / ``@pricing`` metadata when present; the keyword
    arguments are the defaults for undecorated functions.
    """
    info: Any = getattr(fn, _TOOL_ATTR, None) or getattr(fn, _HANDOFF_ATTR, None)
    if info is not None:
        name = info.name or name
        description = info.description or description
        scope = info.scope
        is_handoff = is_handoff or isinstance(info, HandoffInfo)
    name = name or getattr(fn, "__name__", None)
    if not name or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ValueError(f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
    doc_description, param_docs = parse_docstring(inspect.getdoc(fn))
    from .context import RequestContext

    try:
        # RequestContext resolves even when the tool's module imports it only for type
        # checking (``if TYPE_CHECKING:`` with postponed annotations).
        hints = get_type_hints(fn, localns={"RequestContext": RequestContext}, include_extras=True)
    except Exception as exc:  # unresolved forward references
        raise ValueError(f"cannot read the type hints of tool {name!r}: {exc}") from exc
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ValueError(f"tool {name!r}: *args and **kwargs cannot be described to a model")
        if param.name == "self":
            continue
        annotation = hints.get(param.name, Any)
        if _is_context(annotation):
            context_param = param.name
            continue
        if param.name in param_docs:
            annotation = Annotated[annotation, msgspec.Meta(description=param_docs[param.name])]
        if param.default is param.empty:
            fields.append((param.name, annotation))
        else:
            fields.append((param.name, annotation, param.default))
    args_type = msgspec.defstruct(
        f"{name}_arguments", fields, kw_only=True, forbid_unknown_fields=True
    )
    try:
        (_schema,), components = msgspec.json.schema_components(
            [args_type], ref_template="#/$defs/{name}"
        )
    except TypeError as exc:
        raise ValueError(f"tool {name!r}: a parameter type has no JSON schema: {exc}") from exc
    parameters = dict(components.pop(args_type.__name__))
    parameters.pop("title", None)
    parameters.setdefault("properties", {})
    parameters.setdefault("required", [])
    parameters["additionalProperties"] = False
    if components:
        parameters["$defs"] = components
    target = inspect.unwrap(fn)
    return ToolSpec(
        name=name,
        description=description or doc_description or name,
        parameters=parameters,
        scope=_check_scope(scope),
        fn=fn,
        context_param=context_param,
        args_type=args_type,
        pricing=getattr(fn, _PRICING_ATTR, None),
        plugin=plugin,
        is_handoff=is_handoff,
        is_async=inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn),
    )


__all__ = [
    "SCOPES",
    "HandoffInfo",
    "HttpInfo",
    "Pricing",
    "PromptInfo",
    "Scope",
    "ToolSpec",
    "build_tool_spec",
    "handoff",
    "http",
    "http_info",
    "is_tool",
    "parse_docstring",
    "pricing",
    "prompt",
    "prompt_info",
    "tool",
]

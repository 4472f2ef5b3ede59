"""V1 tools: ``{name, description, implementation, access_level}`` entries.

A V2 config names plain-Python tools as ``module:function``, which carries no name,
description or scope. A V1 tool whose ``access_level`` is not ``all`` (or whose name or
description differs from the function's) is therefore written to a small generated module
next to the V2 config, one line per tool: ``v1_tool("shop.orders:lookup", name=...,
scope="owner")``, a copy of the V1 function marked as ``@tool`` (the V1 function itself
is left untouched).
"""

from __future__ import annotations

import inspect
import os
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from robutler_specs import build_tool_spec, tool
from robutler_specs.tools import Scope

from ..toolrefs import import_ref

_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def v1_tool(
    ref: str, *, name: str | None = None, description: str | None = None, scope: str = "all", near: str | None = None
) -> Callable[..., Any]:
    """The V1 function ``ref`` (``module:function``) as a V2 tool with this name,
    description and scope: a copy of it, so the original stays as it was.

    :param near: a folder, or a file whose folder, is searched after ``sys.path`` (the
        generated module passes its own ``__file__``, or the V1 file's folder).
    """
    folder = None if near is None else near if os.path.isdir(near) else os.path.dirname(os.path.abspath(near))
    target = import_ref(ref, folder)
    if not isinstance(target, types.FunctionType):
        raise TypeError(f"{ref} is a {type(target).__name__}, not a function")
    copy = types.FunctionType(target.__code__, target.__globals__, target.__name__, target.__defaults__, target.__closure__)
    copy.__kwdefaults__ = target.__kwdefaults__
    copy.__annotations__ = dict(target.__annotations__)
    copy.__doc__ = target.__doc__
    copy.__dict__.update(target.__dict__)
    copy.__qualname__ = target.__qualname__
    copy.__module__ = target.__module__
    if scope not in ("all", "owner", "admin"):
        raise ValueError(f"scope must be all, owner or admin, not {scope!r}")
    marked: Callable[..., Any] = tool(name=name, description=description, scope=cast(Scope, scope))(copy)
    return marked


def as_ref(implementation: Any) -> str | None:
    """A V1 ``implementation`` as ``module:function`` (``module.function`` is read so too)."""
    if not isinstance(implementation, str):
        return None
    text = implementation.strip()
    if _REF.fullmatch(text):
        return text
    if _DOTTED.fullmatch(text):
        module, _, function = text.rpartition(".")
        return f"{module}:{function}"
    return None


@dataclass
class ToolPlan:
    """A V1 tool as it will be written.

    :ivar ref: the V1 function (``module:function``).
    :ivar name: the tool's name for the model.
    :ivar description: the V1 description (``None``: the docstring's).
    :ivar scope: ``all``, ``owner`` or ``admin``.
    :ivar wrapped: written to the generated module (else the config names ``ref`` itself).
    :ivar attribute: the generated module's attribute (when ``wrapped``).
    :ivar near: the folder the function was found in when it is neither installed nor
        next to the V2 config (the V1 file's): the generated module looks there.
    """

    ref: str
    name: str
    description: str | None
    scope: str
    wrapped: bool
    attribute: str = ""
    near: str | None = None


def resolve(ref: str, name: str | None, description: str | None, scope: str, folders: list[str]) -> ToolPlan:
    """Import ``ref`` (from ``sys.path``, then each of ``folders``) and check it makes a tool.

    :raises ValueError: with the reason it cannot be a tool.
    """
    target: Any = None
    problem = ""
    for folder in [None, *folders]:
        try:
            target = import_ref(ref, folder)
            break
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
    if target is None:
        raise ValueError(f"cannot import {ref} ({problem}); make its module importable (installed, or next to the V2 config)")
    if not isinstance(target, types.FunctionType):
        raise ValueError(f"{ref} is a {type(target).__name__}, not a function")
    try:
        spec = build_tool_spec(target, name=name, description=description, scope=scope)
    except ValueError as exc:
        raise ValueError(f"{ref} cannot be a tool: {exc}") from None
    doc = (inspect.getdoc(target) or "").split("\n\n", 1)[0].replace("\n", " ").strip()
    wrapped = scope != "all" or spec.name != target.__name__ or (description is not None and description.strip() != doc)
    near = None
    try:
        found = os.path.abspath(inspect.getfile(target))
    except TypeError:
        found = ""
    inside = [f for f in folders if found.startswith(os.path.join(os.path.abspath(f), ""))]
    if folders and inside and inside[0] != folders[0]:
        near, wrapped = os.path.abspath(inside[0]), True
    return ToolPlan(ref, spec.name, description, scope, wrapped, near=near)


def module_text(plans: list[ToolPlan], source: str) -> str:
    """The generated module holding the ``wrapped`` tools of ``plans``."""
    lines = [
        f'"""Tools of the agents migrated from V1 ({source}), written by ``robutler-kernel migrate``.',
        "",
        "Each is the V1 implementation as a V2 tool, with the name, description and scope (V1",
        "``access_level``) its V1 config gave it. Edit freely.",
        '"""',
        "",
        "from robutler_kernel.migrate import v1_tool",
        "",
    ]
    for plan in plans:
        if not plan.wrapped:
            continue
        args = [repr(plan.ref), f"name={plan.name!r}"]
        if plan.description is not None:
            args.append(f"description={plan.description!r}")
        args += [f"scope={plan.scope!r}", "near=__file__" if plan.near is None else f"near={plan.near!r}"]
        lines.append(f"{plan.attribute} = v1_tool({', '.join(args)})")
    return "\n".join(lines) + "\n"


__all__ = ["ToolPlan", "as_ref", "module_text", "resolve", "v1_tool"]

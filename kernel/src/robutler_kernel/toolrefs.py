"""Plain-Python tools named in the config: ``tools: ["package.module:function"]``.

A reference is imported from ``sys.path`` first (installed packages, ``PYTHONPATH``), then
from the config file's folder (``KernelConfig.base_dir``), so a ``tools.py`` kept next to
``robutler.yaml`` works however the kernel was started. The installed command
``robutler-kernel`` does not put the working directory on ``sys.path``, which is why the
config's folder is searched: it is where a user keeps such a module. When a module is found
there, that folder stays on ``sys.path`` (at the end), so the module's own imports of its
neighbours and any later lazy import work too; installed packages still win.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from robutler_specs import ConfigError, ToolSpec, build_tool_spec


def import_ref(ref: str, base_dir: str | os.PathLike[str] | None = None) -> Any:
    """The object a ``"module:attr.path"`` reference names.

    :param base_dir: a folder searched after ``sys.path`` (the config file's folder).
    :raises ValueError: the reference is not ``module:attribute``.
    :raises ImportError, AttributeError: nothing by that name.
    """
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{ref!r} must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        folder = os.path.abspath(base_dir) if base_dir is not None else None
        top = module_name.split(".")[0]
        # Only a missing top-level package sends us to the config's folder; an import
        # error inside an installed module is the user's to see as it is.
        if folder is None or exc.name != top or folder in sys.path:
            raise
        sys.path.append(folder)
        try:
            target = importlib.import_module(module_name)
        except ModuleNotFoundError as again:
            sys.path.remove(folder)
            if again.name == top:
                raise ModuleNotFoundError(
                    f"No module named {top!r} (looked in sys.path and in {folder})", name=top
                ) from None
            raise
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def load_tool(ref: str, *, agent: str, base_dir: str | os.PathLike[str] | None = None) -> ToolSpec:
    """Import a ``"module:function"`` tool reference and build its tool spec.

    :param agent: the agent whose ``tools`` names it (for error messages).
    :param base_dir: the config file's folder, searched after ``sys.path``.
    :raises ConfigError: naming the agent and the reference: malformed, not importable,
        or not usable as a tool.
    """
    try:
        target = import_ref(ref, base_dir)
    except ValueError as exc:
        raise ConfigError(f"agents.{agent}.tools: {exc}") from None
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"agents.{agent}.tools: cannot import {ref!r}: {exc}") from exc
    except Exception as exc:  # the module itself fails (a SyntaxError, an error at import time)
        raise ConfigError(f"agents.{agent}.tools: cannot import {ref!r}: {type(exc).__name__}: {exc}") from exc
    try:
        return build_tool_spec(target)
    except ValueError as exc:
        raise ConfigError(f"agents.{agent}.tools: {ref!r}: {exc}") from exc


__all__ = ["import_ref", "load_tool"]

"""Kernel-level HTTP routes a plugin adds through the ``robutler_routes`` hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .context import HttpRequest


@dataclass(frozen=True)
class HttpRoute:
    """A route served by the kernel outside any agent.

    ``handler(request)`` receives an :class:`~robutler_specs.HttpRequest` and returns a
    JSON-serialisable value (``200 application/json``) or raises a ``RequestError``.
    ``path`` may hold Starlette-style parameters (``/payments/{account}``), passed in
    ``request.query`` under their names.
    """

    path: str
    handler: Callable[[HttpRequest], Awaitable[Any]]
    methods: tuple[str, ...] = ("GET",)
    plugin: str | None = None


__all__ = ["HttpRoute"]

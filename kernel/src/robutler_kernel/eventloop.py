"""Which event loop ``serve`` runs on: uvloop when it is installed (it is a dependency of
the kernel on Linux and macOS), else asyncio's own.

uvloop runs the same asyncio code with a loop written in C (libuv): the per-request cost of
the server's I/O (accepting, reading, writing, timers, tasks) drops by about a third in the
benchmarks (``docs/benchmarks.md``). ``ROBUTLER_EVENT_LOOP=asyncio`` chooses asyncio's loop
(for debugging with tools that need it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: ``auto`` (uvloop when installed), ``uvloop`` (required) or ``asyncio``.
ENV_LOOP = "ROBUTLER_EVENT_LOOP"


def loop_factory(choice: str | None = None) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop's name and the factory to make it (``None``: asyncio's default)."""
    choice = (choice or os.environ.get(ENV_LOOP) or "auto").strip().lower()
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"{ENV_LOOP} must be auto, uvloop or asyncio, not {choice!r}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ValueError(f"{ENV_LOOP}=uvloop, but uvloop is not installed (pip install uvloop)") from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", None


def run(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """Run ``main`` to completion on the chosen loop (as ``asyncio.run`` does)."""
    _, factory = loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


__all__ = ["ENV_LOOP", "loop_factory", "run"]

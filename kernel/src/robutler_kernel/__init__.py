"""The Robutler microkernel: serves AI agents over an OpenAI-compatible HTTP API.

Embed it in an ASGI app with :meth:`Kernel.asgi_app`, or run ``robutler-kernel serve``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .agent import Agent
from .kernel import Kernel

__all__ = ["Agent", "Kernel", "__version__"]

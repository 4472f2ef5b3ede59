"""Test kit shipped with the kernel: helpers for testing the kernel and plugins.

Exports are resolved lazily (PEP 562) so that ``python -m
robutler_kernel.testing.fake_openai`` (or ``fake_anthropic``) does not import the module twice.
"""

from __future__ import annotations

from typing import Any

_EXPORTS: dict[str, str] = {
    "AnthropicReply": "fake_anthropic",
    "FakeAnthropic": "fake_anthropic",
    "FakeOpenAI": "fake_openai",
    "FakeReply": "fake_openai",
    "RecordedRequest": "fake_openai",
    "HookCall": "kit",
    "HookRecorder": "kit",
    "LiveServer": "kit",
    "kernel_client": "kit",
    "make_kernel": "kit",
    "StandaloneKernel": "kit",
    "ServeProcess": "serve_process",
    "closed_port": "ports",
    "stalled_port": "ports",
}


def __getattr__(name: str) -> Any:
    """Import an exported name on first use."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)

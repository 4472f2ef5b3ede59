"""A small shared key-value store for what must outlive one request (stored responses, a
turn's server-side tool calls), shared by replicas when a plugin provides a shared one.

The kernel keeps one :class:`StateStore` (``kernel.state_store``): its own in-process store
by default, or the first answer of the ``robutler_state_store`` kernel hook (the memory
plugin answers with Redis when ``plugins: {memory: {redis_url: ...}}`` is set), so that what
one replica stored, another finds.
"""

from __future__ import annotations

from typing import Protocol


class StateStore(Protocol):
    """Bytes by key, each with a time to live. Keys are namespaced by their users
    (``responses:<id>``, ``toolturn:<id>``)."""

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (replacing any value)."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        ...


__all__ = ["StateStore"]

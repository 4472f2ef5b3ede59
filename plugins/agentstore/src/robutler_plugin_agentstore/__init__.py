"""Robutler agent store: agents kept in a PostgreSQL table.

The kernel asks plugins for agents it does not know (``robutler_resolve_agent``); this
plugin answers from a table (``name`` primary key, ``config`` JSONB in the shape of one
entry of ``agents:``, ``updated_at``), validating each row by the same rules as the
config file, and notices changed and deleted rows. Configure it under
``plugins: {agentstore: {dsn: ...}}``; installed but not configured, it does nothing.
Documentation: ``docs/plugins/agentstore.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from robutler_specs import AgentSpec, KernelAPI, hookimpl

from .store import MAX_CACHED, PLUGIN, AgentStore, PluginSettings, ddl, describe_dsn

#: The store the entry point serves (one kernel per process); register an
#: :class:`AgentStore` of your own to run several kernels in one process.
store = AgentStore()


@hookimpl
async def robutler_startup(kernel: KernelAPI) -> None:
    """Open the pool and create the table (``plugins.agentstore``)."""
    await store.robutler_startup(kernel)


@hookimpl
async def robutler_shutdown(kernel: KernelAPI) -> None:
    """Close the pool."""
    await store.robutler_shutdown(kernel)


@hookimpl
async def robutler_resolve_agent(name: str) -> AgentSpec | None:
    """The agent of row ``name``, or ``None``."""
    return await store.robutler_resolve_agent(name)


@hookimpl
def robutler_health_checks() -> Mapping[str, Callable[[], Awaitable[Any]]] | None:
    """``agentstore``: the database answers."""
    return store.robutler_health_checks()


__all__ = ["MAX_CACHED", "PLUGIN", "AgentStore", "PluginSettings", "ddl", "describe_dsn", "store"]

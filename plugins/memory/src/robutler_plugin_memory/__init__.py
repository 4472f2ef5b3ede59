"""Robutler plugin ``memory``: the ``short_term_memory`` skill.

Each conversation's history is prepended to every LLM call and the new messages appended
after a successful request; in-process (default) or in Redis (shared by replicas). The
behaviour and every setting are documented in ``docs/plugins/memory.md``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from robutler_specs import ConfigError, KernelAPI, StateStore, hookimpl

from .config import MemoryConfig
from .inprocess import InProcessStore
from .keys import conversation_key
from .redis_store import RedisStore
from .skill import ShortTermMemory
from .state_store import RedisStateStore, StateSettings, open_store
from .store import Store, StoreUnavailable

#: ``plugins: {memory: {...}}`` (validated by ``robutler-kernel check``).
PluginSettings = StateSettings
_STATE_KEY = "memory.state_store"

__all__ = [
    "InProcessStore",
    "MemoryConfig",
    "RedisStateStore",
    "RedisStore",
    "ShortTermMemory",
    "Store",
    "StoreUnavailable",
    "conversation_key",
]


@hookimpl
def robutler_skills() -> list[type[ShortTermMemory]]:
    """The short-term memory skill."""
    return [ShortTermMemory]


@hookimpl
def robutler_state_store(kernel: KernelAPI) -> StateStore | None:
    """The kernel's shared store in Redis, when ``plugins.memory.redis_url`` is set."""
    try:
        settings = msgspec.convert(dict(kernel.plugin_settings("memory")), StateSettings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"plugins.memory: {exc}") from None
    store = open_store(settings)
    if store is not None:
        kernel.state[_STATE_KEY] = store
    return store


@hookimpl
async def robutler_shutdown(kernel: KernelAPI) -> None:
    """Close the shared store's connections."""
    store: Any = kernel.state.pop(_STATE_KEY, None)
    if store is not None:
        await store.close()

"""Robutler plugin ``memory``: the ``short_term_memory`` skill.

Each conversation's history is prepended to every LLM call and the new messages appended
after a successful request; in-process (default) or in Redis (shared by replicas). The
behaviour and every setting are documented in ``docs/plugins/memory.md``.
"""

from __future__ import annotations

from robutler_specs import hookimpl

from .config import MemoryConfig
from .inprocess import InProcessStore
from .keys import conversation_key
from .redis_store import RedisStore
from .skill import ShortTermMemory
from .store import Store, StoreUnavailable

__all__ = [
    "InProcessStore",
    "MemoryConfig",
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

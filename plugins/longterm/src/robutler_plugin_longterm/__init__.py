"""Long-term memory for Robutler agents: facts about a user that outlive conversations.

The ``long_term_memory`` skill keeps facts per (agent, user) in SQLite (the embedded
default) or PostgreSQL, with full-text search; see ``docs/plugins/longterm.md``.
"""

from __future__ import annotations

from robutler_specs import hookimpl

from .config import InjectConfig, LongTermConfig
from .facts import Fact
from .skill import LongTermMemory, MemoryToolError

__all__ = ["Fact", "InjectConfig", "LongTermConfig", "LongTermMemory", "MemoryToolError"]


@hookimpl
def robutler_skills() -> list[type[LongTermMemory]]:
    """The long-term memory skill."""
    return [LongTermMemory]

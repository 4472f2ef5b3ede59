"""Vector memory for Robutler agents: documents per user and agent, searched by similarity.

The ``vector_memory`` skill stores documents in Milvus (milvus-lite embedded by default,
or a Milvus server), embedded by a ``robutler_embed`` provider plugin or, offline, by a
lexical hashing embedder; see ``docs/plugins/vector.md``.
"""

from __future__ import annotations

from robutler_specs import hookimpl

from .config import RetrieveConfig, VectorConfig
from .embedding import HashingEmbedder
from .skill import VectorMemory, VectorToolError

__all__ = ["HashingEmbedder", "RetrieveConfig", "VectorConfig", "VectorMemory", "VectorToolError"]


@hookimpl
def robutler_skills() -> list[type[VectorMemory]]:
    """The vector memory skill."""
    return [VectorMemory]

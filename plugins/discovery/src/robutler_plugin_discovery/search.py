"""Search over agent entries: vectors when the kernel can embed, BM25 otherwise."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from robutler_specs import KernelAPI

from .entries import AgentEntry
from .ranking import VectorCache, best, bm25, cosine, document

log = logging.getLogger("robutler.plugins.discovery")


class Ranker:
    """Ranks entries for a query (see :mod:`.ranking` for the scoring).

    :param kernel: the kernel whose ``embed`` is asked (``None``: lexical only).
    :param use_vectors: try vectors at all (``ranking: auto``).
    :param model: the embedding model asked, or ``None`` for any.
    :param min_similarity: the cosine similarity an agent must beat in vector ranking.
    """

    def __init__(
        self, kernel: KernelAPI | None, *, use_vectors: bool = True, model: str | None = None,
        min_similarity: float = 0.0,
    ) -> None:
        self.kernel = kernel
        self.use_vectors = use_vectors and kernel is not None
        self.model = model
        self.min_similarity = min_similarity
        self.cache = VectorCache()
        #: How the last search ranked: ``vector`` or ``lexical``.
        self.last_mode = "lexical"

    async def rank(self, entries: Sequence[AgentEntry], query: str, top_k: int) -> list[tuple[AgentEntry, float]]:
        """The best ``top_k`` entries for ``query`` with their scores; every entry (score
        1.0, by name) when ``query`` is blank."""
        names = [e.name for e in entries]
        if not query.strip():
            self.last_mode = "lexical"
            return best(entries, [1.0] * len(entries), top_k, above=0.0, key=names)
        if self.use_vectors and entries:
            scores = await self._similarities(entries, query)
            if scores is not None:
                self.last_mode = "vector"
                return best(entries, scores, top_k, above=self.min_similarity, key=names)
        self.last_mode = "lexical"
        documents = [document(e.name, e.description, e.intents) for e in entries]
        return best(entries, bm25(query, documents), top_k, above=0.0, key=names)

    async def _similarities(self, entries: Sequence[AgentEntry], query: str) -> list[float] | None:
        """Cosine similarity of each entry to ``query``, or ``None`` when embedding is not
        available (no plugin answers, it fails, or its answer has the wrong shape)."""
        assert self.kernel is not None
        texts = [e.text for e in entries]
        missing = list(dict.fromkeys(t for t in texts if self.cache.get(self.model, t) is None))
        try:
            vectors = await self.kernel.embed([query, *missing], self.model)
        except Exception as exc:  # any embedding failure falls back to lexical ranking
            log.warning("discovery: embedding failed (%s: %s); ranking lexically", type(exc).__name__, exc)
            return None
        if vectors is None:
            return None
        if len(vectors) != 1 + len(missing):
            log.warning("discovery: the embedding plugin returned %d vectors for %d texts; ranking lexically",
                        len(vectors), 1 + len(missing))
            return None
        for text, vector in zip(missing, vectors[1:], strict=True):
            self.cache.put(self.model, text, list(vector))
        query_vector = vectors[0]
        return [cosine(query_vector, self.cache.get(self.model, t) or []) for t in texts]

"""Turning text into vectors: a ``robutler_embed`` provider, or the offline hashing embedder.

The hashing embedder is **lexical**, not semantic: it finds documents that share words
(and word pairs) with the query, whatever they mean. It exists so that vector memory
works with no keys and no network; a provider plugin (openai) gives real embeddings.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Awaitable, Callable
from itertools import pairwise

from robutler_specs import RequestError, ServiceUnavailable

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: Texts longer than this (in all) are hashed in a worker thread, not on the event loop.
INLINE_CHARS = 4000

#: Bigrams weigh less than words: they sharpen the ranking of close paraphrases without
#: letting word order dominate.
BIGRAM_WEIGHT = 0.5

KernelEmbed = Callable[[list[str], str | None], Awaitable[list[list[float]] | None]]


class HashingEmbedder:
    """Signed feature hashing of lower-cased words and word bigrams, L2-normalised.

    Each feature is hashed with BLAKE2b (not ``hash()``, which is salted per process),
    so a vector is the same in every process and on every machine: stored documents stay
    findable across restarts. A text with no words maps to the zero vector.

    :param dimensions: the vector size.
    """

    version = "hashing-v1"

    def __init__(self, dimensions: int = 256) -> None:
        self.dimensions = dimensions

    @property
    def identity(self) -> str:
        """What produced the vectors (``hashing-v1/256``)."""
        return f"{self.version}/{self.dimensions}"

    def features(self, text: str) -> list[tuple[str, float]]:
        """The weighted features of ``text``: its words, then its word bigrams."""
        words = [w.lower() for w in _WORD.findall(text)]
        return [(w, 1.0) for w in words] + [(f"{a} {b}", BIGRAM_WEIGHT) for a, b in pairwise(words)]

    def embed_one(self, text: str) -> list[float]:
        """The vector of one text."""
        vector = [0.0] * self.dimensions
        for feature, weight in self.features(text):
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
            # the low bits choose the slot, the top bit the sign (independent of the slot)
            sign = 1.0 if digest >> 63 else -1.0
            vector[digest % self.dimensions] += sign * weight
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector

    def embed(self, texts: list[str]) -> list[list[float]]:
        """The vectors of ``texts``."""
        return [self.embed_one(t) for t in texts]


class Embeddings:
    """Chooses the embedder once and sticks to it, so one collection never mixes vector
    spaces: with ``auto``, the first embedding decides (a provider if one answers,
    else hashing) for the life of the skill.

    :param mode: ``auto``, ``provider`` or ``hashing``.
    :param model: the ``model`` passed to ``robutler_embed``.
    :param hashing: the offline embedder.
    :param kernel_embed: ``kernel.embed``; ``None`` without a kernel (hashing only).
    """

    def __init__(self, mode: str, model: str | None, hashing: HashingEmbedder, kernel_embed: KernelEmbed | None) -> None:
        self.mode = mode
        self.model = model
        self.hashing = hashing
        self.kernel_embed = kernel_embed
        self.chosen: str | None = "hashing" if mode == "hashing" else None

    @property
    def identity(self) -> str | None:
        """What produces the vectors, once chosen: ``hashing-v1/256`` or ``provider:<model>``."""
        if self.chosen == "hashing":
            return self.hashing.identity
        if self.chosen == "provider":
            return f"provider:{self.model or 'default'}"
        return None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, from the chosen embedder."""
        if self.chosen == "hashing":
            return await self._hash(texts)
        vectors = await self._provider(texts)
        if vectors is None:
            if self.mode == "provider" or self.chosen == "provider":
                raise ServiceUnavailable(
                    "vector memory has no embedding provider: no plugin answered "
                    "robutler_embed"
                    + (f" for model {self.model!r}" if self.model else "")
                    + "; install and configure one (robutler-plugin-openai), or set "
                    "skills.vector_memory.embedder: hashing",
                    code="embedding_unavailable",
                    plugin="vector_memory",
                )
            self.chosen = "hashing"
            return await self._hash(texts)
        self.chosen = "provider"
        return vectors

    async def _hash(self, texts: list[str]) -> list[list[float]]:
        if sum(len(t) for t in texts) <= INLINE_CHARS:  # microseconds: a thread hop costs more
            return self.hashing.embed(texts)
        return await asyncio.to_thread(self.hashing.embed, texts)

    async def _provider(self, texts: list[str]) -> list[list[float]] | None:
        if self.kernel_embed is None:
            return None
        try:
            vectors = await self.kernel_embed(texts, self.model)
        except RequestError:
            raise  # the provider's own error (502, 429, ...) names it already
        except Exception as exc:
            raise ServiceUnavailable(
                f"vector memory could not embed: the embedding provider failed: {type(exc).__name__}: {exc}; "
                "check the provider plugin and skills.vector_memory.embedding_model",
                code="embedding_unavailable",
                plugin="vector_memory",
            ) from exc
        if vectors is None:
            return None
        dims = {len(v) for v in vectors}
        if len(vectors) != len(texts) or len(dims) != 1 or 0 in dims:
            raise ServiceUnavailable(
                f"vector memory could not embed: the provider returned {len(vectors)} vectors of "
                f"sizes {sorted(dims)} for {len(texts)} texts; check skills.vector_memory.embedding_model",
                code="embedding_unavailable",
                plugin="vector_memory",
            )
        return [[float(x) for x in v] for v in vectors]

"""Ranking agents for a query: BM25 over their words, or cosine similarity of embeddings.

Lexical (the default, and the fallback): Okapi BM25 (``k1 = 1.2``, ``b = 0.75``) over one
document per agent made of its name, its description and its intents, the intents counted
twice (they are what the agent says it is for). Words are runs of letters and digits,
lower-cased (``weather_bot`` is ``weather`` and ``bot``). Only agents sharing at least one
word with the query score above zero, and only those are listed.

Vector: the query and every agent's text are embedded through the kernel's
``robutler_embed``; agents rank by cosine similarity, those not above ``min_similarity``
left out. Agent vectors are cached by (model, text), so each text is embedded once.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: BM25's term-frequency saturation and length normalization.
K1 = 1.2
B = 0.75

#: Words of a query beyond this many are ignored (a pasted document is not a query).
MAX_QUERY_WORDS = 64


def words(text: str) -> list[str]:
    """The lower-case words of ``text``."""
    return [w.lower() for w in _WORD.findall(text)]


def document(name: str, description: str, intents: Sequence[str]) -> list[str]:
    """The words BM25 reads for one agent: name, description, intents twice."""
    intent_words = words(" ".join(intents))
    return words(name) + words(description) + intent_words + intent_words


def bm25(query: str, documents: Sequence[Sequence[str]]) -> list[float]:
    """The BM25 score of each document for ``query`` (0.0 when no word matches)."""
    terms = list(dict.fromkeys(words(query)))[:MAX_QUERY_WORDS]
    n = len(documents)
    if not terms or n == 0:
        return [0.0] * n
    counts = [Counter(doc) for doc in documents]
    average = sum(len(doc) for doc in documents) / n or 1.0
    frequency = {t: sum(1 for c in counts if t in c) for t in terms}
    idf = {t: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for t, df in frequency.items()}
    scores = []
    for doc, count in zip(documents, counts, strict=True):
        norm = K1 * (1.0 - B + B * len(doc) / average)
        scores.append(sum(idf[t] * count[t] * (K1 + 1.0) / (count[t] + norm) for t in terms if t in count))
    return scores


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors (0.0 when either is all zeros or they differ in length)."""
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def best(items: Sequence[T], scores: Sequence[float], top_k: int, *, above: float, key: Sequence[str]) -> list[tuple[T, float]]:
    """The ``top_k`` items scoring above ``above``, best first; ties by ``key`` (the name)."""
    order = sorted(
        (i for i, s in enumerate(scores) if s > above),
        key=lambda i: (-scores[i], key[i]),
    )
    return [(items[i], scores[i]) for i in order[: max(top_k, 0)]]


class VectorCache:
    """Embeddings of agent texts by (model, text), least recently used dropped first.

    :param size: how many vectors are kept.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str | None, str], list[float]] = OrderedDict()

    def get(self, model: str | None, text: str) -> list[float] | None:
        """The cached vector, or ``None``."""
        vector = self._vectors.get((model, text))
        if vector is not None:
            self._vectors.move_to_end((model, text))
        return vector

    def put(self, model: str | None, text: str, vector: list[float]) -> None:
        """Keep a vector."""
        self._vectors[(model, text)] = vector
        self._vectors.move_to_end((model, text))
        while len(self._vectors) > self.size:
            self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)

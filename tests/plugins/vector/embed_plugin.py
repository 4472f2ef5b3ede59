"""A small embedding provider plugin for the tests: ``robutler_embed`` with a toy
"semantic" space where synonyms share an axis (so it finds what hashing cannot)."""

from __future__ import annotations

import math

from robutler_specs import ServiceUnavailable, hookimpl

#: Each axis and the words that point along it.
AXES = [
    {"car", "automobile", "vehicle", "sedan"},
    {"dog", "puppy", "hound", "canine"},
    {"money", "revenue", "income", "profit"},
    {"ocean", "sea", "beach", "coast"},
]
DIMENSIONS = len(AXES) + 1  # the last axis: anything else

#: Every call, as (texts, model).
CALLS: list[tuple[list[str], str | None]] = []
#: "on", "none" (answer None: cannot embed) or "down" (the service is unavailable: 503).
MODE = "on"


def vector(text: str) -> list[float]:
    """The toy embedding of ``text`` (unit length)."""
    words = text.lower().replace(".", " ").replace("?", " ").split()
    v = [float(sum(w in axis for w in words)) for axis in AXES] + [0.1]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


@hookimpl
def robutler_embed(texts: list[str], model: str | None) -> list[list[float]] | None:
    CALLS.append((list(texts), model))
    if MODE == "none":
        return None
    if MODE == "down":
        raise ServiceUnavailable("toy embedding service is down")
    return [vector(t) for t in texts]

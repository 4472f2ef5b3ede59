"""Facts, their keys, and the words a search looks for: shared by both backends."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Words of a search: runs of letters/digits. Anything else (quotes, operators of FTS5 or
#: tsquery syntax) is dropped, so user text can never change the shape of a query.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: More words than this in one search are ignored (a whole pasted document is not a query).
MAX_TERMS = 32


class InvalidFact(ValueError):
    """A key or value the skill refuses; the message tells the model what to fix."""


@dataclass(frozen=True, slots=True)
class Fact:
    """One remembered fact about a user."""

    key: str
    value: str
    updated_at: float = 0.0

    def as_dict(self) -> dict[str, str]:
        """The fact as the model sees it."""
        return {"key": self.key, "value": self.value}


def normalize_key(key: str) -> str:
    """Keys are case-insensitive and whitespace-insensitive: ``" Favourite  Color"`` and
    ``"favourite color"`` are one fact, so a model that rephrases a key updates the fact
    instead of piling up near-duplicates."""
    return " ".join(key.split()).lower()


def check_fact(key: str, value: str, *, max_key_chars: int, max_value_chars: int) -> tuple[str, str]:
    """The normalized key and the value, or :class:`InvalidFact`."""
    normalized = normalize_key(key)
    if not normalized:
        raise InvalidFact("the key is empty; use a short name for the fact, e.g. 'favourite color'")
    if len(normalized) > max_key_chars:
        raise InvalidFact(f"the key is longer than {max_key_chars} characters; use a shorter name")
    if "\x00" in normalized or "\x00" in value:
        raise InvalidFact("keys and values may not contain NUL characters")
    if not value.strip():
        raise InvalidFact("the value is empty; to remove a fact call forget(key)")
    if len(value) > max_value_chars:
        raise InvalidFact(
            f"the value is {len(value)} characters, more than the {max_value_chars} allowed; "
            "store a shorter summary"
        )
    return normalized, value


def search_terms(query: str) -> list[str]:
    """The distinct lower-case words of ``query`` (at most :data:`MAX_TERMS`)."""
    words = dict.fromkeys(w.lower() for w in _WORD.findall(query))
    return list(words)[:MAX_TERMS]

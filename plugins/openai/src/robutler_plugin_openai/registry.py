"""Which ``openai`` skill instances are live, for the module-level ``robutler_embed``.

Kernel hooks are plain module functions with no access to skill instances, while the
configuration (key, base_url, embedding model) lives on the instances, one per agent.
So each instance lists itself here when its client is created (``start()`` or first use)
and removes itself in ``stop()``. ``robutler_embed`` then uses the first live instance,
preferring one configured with the asked-for (or any) ``embedding_model``. No client is
ever created here: embedding works exactly when some agent has the openai skill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .skill import OpenAISkill

_live: list[OpenAISkill] = []


def add(skill: OpenAISkill) -> None:
    """List a skill whose client is open (idempotent)."""
    if not any(s is skill for s in _live):
        _live.append(skill)


def discard(skill: OpenAISkill) -> None:
    """Forget a stopped skill."""
    _live[:] = [s for s in _live if s is not skill]


def live() -> list[OpenAISkill]:
    """The live skills, oldest first."""
    return list(_live)


def choose(model: str | None) -> OpenAISkill | None:
    """The skill to embed with: one whose ``embedding_model`` is ``model`` (or, when
    ``model`` is None, is set at all), else the oldest live one."""
    for skill in _live:
        wanted = skill.config.embedding_model
        if wanted is not None and (model is None or wanted == model):
            return skill
    return _live[0] if _live else None


__all__ = ["add", "choose", "discard", "live"]

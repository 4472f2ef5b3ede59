"""Which ``openai`` skill instances are live in a kernel, for ``robutler_embed``.

Kernel hooks are module functions, while the configuration (key, base_url, embedding
model) lives on the skill instances, one per agent. So each instance lists itself in its
kernel's ``state`` when its client is created (``start()`` or first use) and removes itself
in ``stop()``; ``robutler_embed(texts, model, kernel)`` then uses the first live instance of
*that* kernel, preferring one configured with the asked-for (or any) ``embedding_model``.
No client is ever created here: embedding works exactly when some agent of the kernel has
the openai skill, and two kernels in one process never share clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .skill import OpenAISkill

#: The key of the live-skill list in ``kernel.state``.
STATE_KEY = "openai.live_skills"


def _live(state: dict[str, Any]) -> list[OpenAISkill]:
    found: list[OpenAISkill] = state.setdefault(STATE_KEY, [])
    return found


def add(state: dict[str, Any], skill: OpenAISkill) -> None:
    """List a skill whose client is open (idempotent)."""
    live = _live(state)
    if not any(s is skill for s in live):
        live.append(skill)


def discard(state: dict[str, Any], skill: OpenAISkill) -> None:
    """Forget a stopped skill."""
    live = _live(state)
    live[:] = [s for s in live if s is not skill]


def live(state: dict[str, Any]) -> list[OpenAISkill]:
    """The live skills, oldest first."""
    return list(_live(state))


def choose(state: dict[str, Any], model: str | None) -> OpenAISkill | None:
    """The skill to embed with: one whose ``embedding_model`` is ``model`` (or, when
    ``model`` is None, is set at all), else the oldest live one."""
    live = _live(state)
    for skill in live:
        wanted = skill.config.embedding_model
        if wanted is not None and (model is None or wanted == model):
            return skill
    return live[0] if live else None


__all__ = ["STATE_KEY", "add", "choose", "discard", "live"]

"""Robutler plugin: OpenAI and any OpenAI-compatible server (vLLM, Ollama, LM Studio...).

``model: openai/<model>`` in an agent's config selects the :class:`OpenAISkill`; its
config keys are documented on :class:`OpenAIConfig` and in ``docs/plugins/openai.md``.
The module also implements the kernel hook ``robutler_embed`` (see :mod:`.registry` for
how it reaches the skills' clients through the kernel it is given).
"""

from __future__ import annotations

from robutler_specs import KernelAPI, Skill, hookimpl

from .config import OpenAIConfig
from .embeddings import embed
from .skill import OpenAISkill

__all__ = ["OpenAIConfig", "OpenAISkill", "robutler_embed", "robutler_skills"]


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    """The skills this plugin provides: :class:`OpenAISkill`."""
    return [OpenAISkill]


@hookimpl
async def robutler_embed(texts: list[str], model: str | None, kernel: KernelAPI) -> list[list[float]] | None:
    """Embed ``texts`` with a live openai skill's client. Stops at first non-None result.

    :param texts: the texts to embed.
    :param model: ``"openai/<model>"``, or ``None`` for the configured embedding model.
    :param kernel: the kernel asking (its live openai skills are used).
    :return: one vector per text, or ``None`` for another provider's model or when no
        agent uses the openai skill.
    """
    return await embed(texts, model, kernel)

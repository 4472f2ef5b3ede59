"""Robutler plugin: Anthropic's Messages API (Claude) behind OpenAI-shaped chat completions.

``model: anthropic/<model>`` in an agent's config selects the :class:`AnthropicSkill`; its
config keys are documented on :class:`AnthropicConfig` and in ``docs/plugins/anthropic.md``.
Anthropic has no embeddings API, so this plugin implements no ``robutler_embed``.
"""

from __future__ import annotations

from robutler_specs import Skill, hookimpl

from .config import AnthropicConfig
from .skill import AnthropicSkill

__all__ = ["AnthropicConfig", "AnthropicSkill", "robutler_skills"]


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    """The skills this plugin provides: :class:`AnthropicSkill`."""
    return [AnthropicSkill]

"""The ``scripted`` model: offline and deterministic. It is not a language model.

``model: scripted/<name>``. If the skill config has a script called ``<name>``, the model
replays it; otherwise it follows fixed rules (see :mod:`.rules`). Exactly what it does is
documented in ``docs/plugins/scripted.md``.
"""

from __future__ import annotations

from robutler_specs import hookimpl

from .skill import Script, ScriptedConfig, ScriptedSkill, ScriptedToolCall, Turn

__all__ = ["Script", "ScriptedConfig", "ScriptedSkill", "ScriptedToolCall", "Turn"]


@hookimpl
def robutler_skills() -> list[type[ScriptedSkill]]:
    """The scripted model skill."""
    return [ScriptedSkill]

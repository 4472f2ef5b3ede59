"""A second well-formed plugin: one skill, named ``clock``."""

from __future__ import annotations

from robutler_specs import Skill, hookimpl


class ClockSkill(Skill):
    """Tells the time."""

    name = "clock"


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    """The clock skill."""
    return [ClockSkill]

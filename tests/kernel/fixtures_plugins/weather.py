"""A well-formed plugin: one skill, named ``weather``."""

from __future__ import annotations

from robutler_specs import Skill, hookimpl, tool


class WeatherSkill(Skill):
    """Tells the weather."""

    name = "weather"

    @tool
    def forecast(self, city: str) -> str:
        """The forecast for a city."""
        return f"sunny in {city}"


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    """The weather skill."""
    return [WeatherSkill]

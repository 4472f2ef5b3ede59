"""Skill dependency resolution: which skills an agent runs, dependencies included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from robutler_specs import PluginError

#: Skills whose distribution is not simply ``robutler-plugin-<skill>``.
KNOWN_SKILL_PACKAGES: dict[str, str] = {
    "short_term_memory": "robutler-plugin-memory",
    "long_term_memory": "robutler-plugin-longterm",
    "vector_memory": "robutler-plugin-vector",
}


def package_for(skill: str) -> str:
    """The distribution that usually provides ``skill``, for error messages."""
    return KNOWN_SKILL_PACKAGES.get(skill, f"robutler-plugin-{skill.replace('_', '-')}")


def resolve_skills(
    requested: Sequence[str], requires: Mapping[str, Sequence[str]], *, agent: str
) -> list[str]:
    """Return the skills to run for an agent: ``requested`` plus everything they require,
    transitively, each once, dependencies before the skills that need them.

    :param requested: skill names the agent configures, in config order.
    :param requires: for every available skill, the names it requires.
    :param agent: the agent's name, for error messages.
    :raises PluginError: a skill no installed plugin provides (naming the package to
        install), or a dependency cycle (naming the cycle).
    """
    order: list[str] = []
    done: set[str] = set()

    def visit(skill: str, path: tuple[str, ...]) -> None:
        if skill in done:
            return
        if skill in path:
            cycle = " -> ".join((*path[path.index(skill) :], skill))
            raise PluginError(f"agent {agent!r}: skill dependency cycle: {cycle}")
        if skill not in requires:
            needed_by = f" (required by skill {path[-1]!r})" if path else ""
            raise PluginError(
                f"agent {agent!r}: no installed plugin provides skill {skill!r}{needed_by}; "
                f"install it with: pip install {package_for(skill)}"
            )
        for dependency in requires[skill]:
            visit(dependency, (*path, skill))
        done.add(skill)
        order.append(skill)

    for skill in requested:
        visit(skill, ())
    return order

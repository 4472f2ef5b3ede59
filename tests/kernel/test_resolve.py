"""Tests for robutler_kernel.resolve: skill dependency resolution."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel.resolve import package_for, resolve_skills
from robutler_specs import PluginError

REQUIRES = {
    "auth": (),
    "payments": ("auth",),
    "nli": ("payments", "auth"),
    "openai": (),
    "short_term_memory": (),
    "summariser": ("short_term_memory", "openai"),
}


def test_no_dependencies_keeps_config_order() -> None:
    assert resolve_skills(["openai", "auth"], REQUIRES, agent="a") == ["openai", "auth"]


def test_missing_dependency_is_added_before_the_skill_needing_it() -> None:
    assert resolve_skills(["payments"], REQUIRES, agent="a") == ["auth", "payments"]


def test_transitive_dependencies_are_added_once_deps_first() -> None:
    result = resolve_skills(["nli"], REQUIRES, agent="a")
    assert result == ["auth", "payments", "nli"]


def test_a_skill_requested_and_required_appears_once() -> None:
    result = resolve_skills(["payments", "auth", "nli", "payments"], REQUIRES, agent="a")
    assert result == ["auth", "payments", "nli"]
    assert len(result) == len(set(result))


def test_empty_request_gives_nothing() -> None:
    assert resolve_skills([], REQUIRES, agent="a") == []


def test_missing_requested_skill_names_the_package_and_agent() -> None:
    with pytest.raises(PluginError) as info:
        resolve_skills(["guardrails"], REQUIRES, agent="support")
    message = str(info.value)
    assert "'support'" in message
    assert "'guardrails'" in message
    assert "pip install robutler-plugin-guardrails" in message
    assert "required by" not in message


def test_missing_dependency_names_the_requiring_skill_and_package() -> None:
    requires = {"payments": ("auth",)}
    with pytest.raises(PluginError) as info:
        resolve_skills(["payments"], requires, agent="shop")
    message = str(info.value)
    assert "'auth'" in message
    assert "required by skill 'payments'" in message
    assert "pip install robutler-plugin-auth" in message


@pytest.mark.parametrize(
    ("skill", "package"),
    [
        ("short_term_memory", "robutler-plugin-memory"),
        ("long_term_memory", "robutler-plugin-longterm"),
        ("vector_memory", "robutler-plugin-vector"),
        ("openai", "robutler-plugin-openai"),
        ("my_skill", "robutler-plugin-my-skill"),
    ],
)
def test_package_hint_for_known_and_unknown_skills(skill: str, package: str) -> None:
    assert package_for(skill) == package
    with pytest.raises(PluginError, match=f"pip install {package}"):
        resolve_skills([skill], {}, agent="a")


def test_two_cycle_is_named() -> None:
    with pytest.raises(PluginError, match=r"cycle: a -> b -> a"):
        resolve_skills(["a"], {"a": ("b",), "b": ("a",)}, agent="x")


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(PluginError, match=r"cycle: a -> a"):
        resolve_skills(["a"], {"a": ("a",)}, agent="x")


def test_cycle_below_an_entry_point_names_only_the_cycle() -> None:
    requires = {"top": ("b",), "b": ("c",), "c": ("d",), "d": ("b",)}
    with pytest.raises(PluginError) as info:
        resolve_skills(["top"], requires, agent="x")
    message = str(info.value)
    assert "cycle: b -> c -> d -> b" in message
    assert "top ->" not in message
    assert "'x'" in message


def test_a_cycle_not_reachable_from_the_request_is_ignored() -> None:
    requires = {"ok": (), "a": ("b",), "b": ("a",)}
    assert resolve_skills(["ok"], requires, agent="x") == ["ok"]


def test_diamond_resolves_shared_dependency_once() -> None:
    requires = {"top": ("left", "right"), "left": ("base",), "right": ("base",), "base": ()}
    assert resolve_skills(["top"], requires, agent="x") == ["base", "left", "right", "top"]


# -- properties ----------------------------------------------------------------------------------------

NAMES = [f"s{i}" for i in range(10)]


@st.composite
def dags(draw: st.DrawFn) -> dict[str, tuple[str, ...]]:
    """A random DAG: a skill may only require skills with a larger index."""
    n = draw(st.integers(min_value=1, max_value=len(NAMES)))
    graph: dict[str, tuple[str, ...]] = {}
    for i in range(n):
        later = NAMES[i + 1 : n]
        deps = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) if later else []
        graph[NAMES[i]] = tuple(deps)
    # Shuffle the names so that index order does not give the answer away.
    perm = draw(st.permutations(NAMES[:n]))
    rename = dict(zip(NAMES[:n], perm, strict=True))
    return {rename[k]: tuple(rename[d] for d in v) for k, v in graph.items()}


def closure(graph: dict[str, tuple[str, ...]], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(graph[node])
    return seen


@given(st.data())
def test_random_dags_resolve_to_the_closure_each_once_deps_first(data: st.DataObject) -> None:
    graph = data.draw(dags())
    requested = data.draw(st.lists(st.sampled_from(sorted(graph)), max_size=5))
    result = resolve_skills(requested, graph, agent="a")
    assert len(result) == len(set(result)), "each skill once"
    assert set(result) == closure(graph, requested), "requested skills and all their deps"
    position = {skill: i for i, skill in enumerate(result)}
    for skill in result:
        for dep in graph[skill]:
            assert position[dep] < position[skill], f"{dep} must come before {skill}"


@given(st.data())
def test_resolution_is_deterministic(data: st.DataObject) -> None:
    graph = data.draw(dags())
    requested = data.draw(st.lists(st.sampled_from(sorted(graph)), max_size=5))
    assert resolve_skills(requested, graph, agent="a") == resolve_skills(requested, graph, agent="a")


@given(st.data())
def test_requested_skills_without_deps_keep_their_config_order(data: st.DataObject) -> None:
    graph = data.draw(dags())
    requested = data.draw(st.lists(st.sampled_from(sorted(graph)), unique=True, max_size=5))
    result = resolve_skills(requested, graph, agent="a")
    # Skills that neither require anything nor are required by another requested skill
    # keep their relative config order.
    dependencies = set().union(*(closure(graph, [s]) - {s} for s in requested))
    independent = [s for s in requested if not graph[s] and s not in dependencies]
    positions = [result.index(s) for s in independent]
    assert positions == sorted(positions)


@given(st.data())
def test_random_graphs_with_a_reachable_cycle_raise_naming_a_cycle(data: st.DataObject) -> None:
    graph = dict(data.draw(dags()))
    nodes = sorted(graph)
    # Close a cycle: pick a path u -> ... -> v that exists (or u == v) and add v -> u.
    u = data.draw(st.sampled_from(nodes))
    reachable = sorted(closure(graph, [u]))
    v = data.draw(st.sampled_from(reachable))
    graph[v] = (*graph[v], u)
    # Request something from which the cycle is reachable (u itself or an ancestor).
    ancestors = [n for n in nodes if u in closure(graph, [n])]
    root = data.draw(st.sampled_from(ancestors))
    others = data.draw(st.lists(st.sampled_from(nodes), max_size=3))
    requested = [*others, root]
    with pytest.raises(PluginError) as info:
        resolve_skills(requested, graph, agent="a")
    message = str(info.value)
    assert "cycle" in message
    cycle = message.split("cycle: ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1], "the named cycle closes on itself"
    for a, b in itertools.pairwise(cycle):
        assert b in graph[a], f"{a} -> {b} is an edge of the graph"

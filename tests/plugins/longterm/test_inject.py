"""Prompt injection: the most relevant facts for the last user message reach the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robutler_kernel.testing import kernel_client
from robutler_plugin_longterm.facts import Fact
from robutler_plugin_longterm.skill import format_facts

from .helpers import PromptSpy, chat, memory_kernel


def facts_in(prompt: str) -> list[str]:
    return [line[2:].split(":")[0] for line in prompt.splitlines() if line.startswith("- ")]


async def seed(client: Any, agent: str, user: str, facts: dict[str, str]) -> None:
    for key, value in facts.items():
        assert "Remembered" in await chat(client, agent, f'call remember key="{key}" value="{value}"', user=user)


async def test_most_relevant_facts_first_then_recent_ones(longterm_backend: dict[str, Any]) -> None:
    config = {**longterm_backend, "inject": {"enabled": True, "top_k": 3}}
    kernel = memory_kernel({"bot": config}, spy=True)
    async with kernel_client(kernel) as client:
        await seed(client, "bot", "alice", {
            "favourite food": "sushi with wasabi",
            "pet": "a dog called Rex",
            "job": "astronomer at the observatory",
            "city": "lives in Tromso",
            "allergy": "peanuts",
        })
        PromptSpy.seen.clear()
        await chat(client, "bot", "Can you suggest food for my dog?", user="alice")
    (prompt,) = PromptSpy.seen
    assert prompt.startswith("You are a test agent.")
    assert "Long-term memory: facts saved about this user" in prompt
    shown = facts_in(prompt)
    # both matching facts (food, dog), then the most recent other fact fills the third slot
    assert sorted(shown[:2]) == ["favourite food", "pet"]
    assert shown[2] == "allergy"
    assert "- pet: a dog called Rex" in prompt


async def test_no_matching_word_falls_back_to_recency(longterm_backend: dict[str, Any]) -> None:
    config = {**longterm_backend, "inject": {"enabled": True, "top_k": 2}}
    kernel = memory_kernel({"bot": config}, spy=True)
    async with kernel_client(kernel) as client:
        await seed(client, "bot", "bob", {"first": "one", "second": "two", "third": "three"})
        PromptSpy.seen.clear()
        await chat(client, "bot", "hello there", user="bob")
    assert facts_in(PromptSpy.seen[0]) == ["third", "second"]


async def test_nothing_injected_for_anonymous_callers_other_users_or_when_disabled(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    kernel = memory_kernel(
        {"on": {"path": path, "namespace": "shared", "inject": {"enabled": True}},
         "off": {"path": path, "namespace": "shared"}},
        spy=True,
    )
    async with kernel_client(kernel) as client:
        await seed(client, "on", "alice", {"color": "green"})
        PromptSpy.seen.clear()
        await chat(client, "on", "what is my color?")  # anonymous
        await chat(client, "on", "what is my color?", user="bob")
        await chat(client, "off", "what is my color?", user="alice")
        await chat(client, "on", "what is my color?", user="alice")
    assert PromptSpy.seen[:3] == ["You are a test agent."] * 3
    assert "- color: green" in PromptSpy.seen[3]


async def test_injected_text_is_capped(tmp_path: Path) -> None:
    config = {"path": str(tmp_path / "m.db"), "inject": {"enabled": True, "top_k": 10, "max_chars": 300}}
    kernel = memory_kernel({"bot": config}, spy=True)
    async with kernel_client(kernel) as client:
        await seed(client, "bot", "u", {f"fact {i}": "x" * 90 for i in range(5)})
        PromptSpy.seen.clear()
        await chat(client, "bot", "hi", user="u")
    fragment = PromptSpy.seen[0].split("\n\n", 1)[1]
    assert len(fragment) <= 300 and 1 <= len(facts_in(fragment)) < 5


def test_format_facts_flattens_values_and_skips_an_empty_list() -> None:
    assert format_facts([], 1000) is None
    text = format_facts([Fact("note", "line one\nline two")], 1000)
    assert text is not None and text.endswith("- note: line one line two")
    assert format_facts([Fact("k", "v" * 500)], 200) is None  # not even one whole line fits

"""The scripted model: replays scripts, follows its documented rules, and is deterministic."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import make_kernel
from robutler_plugin_scripted import rules
from robutler_specs import ProviderError


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["scripted"] == "robutler_plugin_scripted"


async def ask(agent_config: dict[str, Any], messages: list[dict[str, Any]], **kw: Any) -> Any:
    kernel = make_kernel({"bot": agent_config}, plugins=[scripted])
    await kernel.startup()
    return await kernel.agent("bot").run(messages, **kw)


async def test_replays_turns_by_position_in_the_conversation() -> None:
    config = {"model": "scripted/demo", "skills": {"scripted": {"scripts": {"demo": [{"content": "one"}, {"content": "two"}]}}}}
    first = await ask(config, [{"role": "user", "content": "a"}])
    second = await ask(config, [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "one"}, {"role": "user", "content": "b"},
    ])
    third = await ask(config, [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "one"},
        {"role": "user", "content": "b"}, {"role": "assistant", "content": "two"}, {"role": "user", "content": "c"},
    ])
    assert first.choices[0].message.content == "one"
    assert second.choices[0].message.content == "two"
    assert third.choices[0].message.content == "You said: c"  # past the script: the rules


async def test_scripted_error_turn_is_a_provider_error() -> None:
    config = {"model": "scripted/bad", "skills": {"scripted": {"scripts": {"bad": [{"error": "quota exceeded"}]}}}}
    with pytest.raises(ProviderError, match="quota exceeded"):
        await ask(config, [{"role": "user", "content": "a"}])


async def test_calls_a_tool_the_user_names_only_if_offered() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    offered = await ask({"model": "scripted/echo"}, [{"role": "user", "content": 'call lookup {"q": "x", "n": 2}'}], tools=[tool])
    (call,) = offered.choices[0].message.tool_calls
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": "x", "n": 2}
    not_offered = await ask({"model": "scripted/echo"}, [{"role": "user", "content": "call lookup q=x"}])
    assert not_offered.choices[0].message.content == "You said: call lookup q=x"


async def test_same_conversation_same_answer() -> None:
    messages = [{"role": "user", "content": "deterministic?"}]
    a = await ask({"model": "scripted/echo"}, messages)
    b = await ask({"model": "scripted/echo"}, messages)
    assert a.choices[0].message == b.choices[0].message and a.usage == b.usage


def test_key_value_and_json_arguments() -> None:
    assert rules.parse_arguments('city=Paris days=3 exact=true note="two words"') == {
        "city": "Paris", "days": 3, "exact": True, "note": "two words",
    }
    assert rules.parse_arguments('{"a": [1, 2]}') == {"a": [1, 2]}
    assert rules.tool_request("please use the tool weather city=Oslo", {"weather"}) == ("weather", {"city": "Oslo"})
    assert rules.tool_request("call nothing", {"weather"}) is None


@given(st.text())
def test_argument_parser_never_raises(text: str) -> None:
    assert isinstance(rules.parse_arguments(text), dict)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), st.integers() | st.booleans() | st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True), max_size=5))
def test_key_value_arguments_round_trip(arguments: dict[str, Any]) -> None:
    text = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in arguments.items())
    parsed = rules.parse_arguments(text)
    assert parsed.keys() == arguments.keys()
    for key, value in arguments.items():
        if isinstance(value, str) and value in ("true", "false", "null"):
            continue
        assert parsed[key] == value

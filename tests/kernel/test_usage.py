"""Tests for robutler_kernel.usage: token estimates and tool results as text."""

from __future__ import annotations

import dataclasses
import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from robutler_kernel.usage import estimate_tokens, estimate_usage, to_text
from robutler_specs import FunctionCall, Message, ToolCall


def user(text: str) -> Message:
    return Message(role="user", content=text)


def assistant(text: str) -> Message:
    return Message(role="assistant", content=text)


def test_estimate_is_marked_estimated_and_adds_up() -> None:
    usage = estimate_usage([user("hello world!")], assistant("hi"))
    assert usage.estimated is True
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_estimate_follows_the_documented_rule() -> None:
    # About four characters per token, rounded up, plus four tokens of framing per
    # prompt message.
    usage = estimate_usage([user("a" * 8), Message(role="system", content="b" * 9)], assistant("c" * 5))
    assert usage.prompt_tokens == (2 + 4) + (3 + 4)
    assert usage.completion_tokens == 2


def test_empty_completion_costs_nothing() -> None:
    usage = estimate_usage([], assistant(""))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (0, 0, 0)
    assert usage.estimated is True


def test_tool_calls_count_towards_the_estimate() -> None:
    plain = estimate_usage([user("x")], Message(role="assistant"))
    calling = estimate_usage(
        [user("x")],
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="c", function=FunctionCall("get_weather", '{"city": "Paris"}'))],
        ),
    )
    assert calling.completion_tokens > plain.completion_tokens


def test_content_parts_count_their_text() -> None:
    parts = Message(role="user", content=[{"type": "text", "text": "a" * 40}])
    assert estimate_usage([parts], assistant("")).prompt_tokens == 10 + 4


@given(st.text(), st.text())
def test_estimate_tokens_is_monotonic_in_text_length(a: str, b: str) -> None:
    assert estimate_tokens(a + b) >= estimate_tokens(a)
    assert estimate_tokens(a) * 4 >= len(a)  # never underestimates the 4-chars rule


@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=200))
def test_estimate_usage_is_monotonic_in_prompt_and_completion_length(
    prompt: str, completion: str, more: str
) -> None:
    base = estimate_usage([user(prompt)], assistant(completion))
    longer_prompt = estimate_usage([user(prompt + more)], assistant(completion))
    longer_completion = estimate_usage([user(prompt)], assistant(completion + more))
    assert longer_prompt.prompt_tokens >= base.prompt_tokens
    assert longer_prompt.completion_tokens == base.completion_tokens
    assert longer_completion.completion_tokens >= base.completion_tokens
    assert longer_completion.prompt_tokens == base.prompt_tokens
    assert longer_prompt.total_tokens >= base.total_tokens


@given(st.lists(st.text(max_size=50), max_size=6))
def test_more_messages_never_cost_less(texts: list[str]) -> None:
    totals = [estimate_usage([user(t) for t in texts[:n]], assistant("")).prompt_tokens for n in range(len(texts) + 1)]
    assert totals == sorted(totals)


# -- to_text ---------------------------------------------------------------------------------------


class Forecast(msgspec.Struct):
    city: str
    celsius: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


def test_strings_are_returned_as_they_are() -> None:
    assert to_text("sunny") == "sunny"
    assert to_text('{"already": "json"}') == '{"already": "json"}'
    assert to_text("") == ""


def test_none_is_empty_text() -> None:
    assert to_text(None) == ""


def test_builtins_become_json() -> None:
    assert json.loads(to_text({"a": [1, 2.5, True, None]})) == {"a": [1, 2.5, True, None]}
    assert to_text(42) == "42"
    assert to_text(False) == "false"
    assert json.loads(to_text([1, "two"])) == [1, "two"]


def test_structs_and_dataclasses_become_json() -> None:
    assert json.loads(to_text(Forecast("Paris", 21.5))) == {"city": "Paris", "celsius": 21.5}
    assert json.loads(to_text(Point(1, 2))) == {"x": 1, "y": 2}
    assert json.loads(to_text([Forecast("Rome", 30.0)])) == [{"city": "Rome", "celsius": 30.0}]


def test_non_serialisable_values_fall_back_to_str() -> None:
    assert to_text(Opaque()) == "<opaque thing>"
    mixed = {"thing": Opaque()}
    assert to_text(mixed) == str(mixed)


def test_unicode_is_kept_readable() -> None:
    assert json.loads(to_text({"city": "Zürich"})) == {"city": "Zürich"}
    assert "Zürich" in to_text({"city": "Zürich"})


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)


@given(_json_values.filter(lambda v: not isinstance(v, str) and v is not None))
def test_to_text_of_json_values_round_trips(value: object) -> None:
    assert json.loads(to_text(value)) == value

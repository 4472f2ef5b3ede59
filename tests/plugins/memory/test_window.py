"""The window (count and token budget, whole tool groups) and tool-pair consistency."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from robutler_plugin_memory.window import (
    MESSAGE_OVERHEAD,
    drop_to_window,
    estimate_tokens,
    for_model,
    pending_calls,
    trim,
    window_start,
)
from robutler_specs import FunctionCall, Message, ToolCall

from .helpers import roles


def user(text: str = "hi") -> Message:
    return Message(role="user", content=text)


def assistant(text: str = "ok", calls: list[str] | None = None) -> Message:
    tool_calls = [ToolCall(id=c, function=FunctionCall(name="lookup", arguments="{}")) for c in calls or []]
    return Message(role="assistant", content=text or None, tool_calls=tool_calls or None)


def result(call_id: str, text: str = "done") -> Message:
    return Message(role="tool", tool_call_id=call_id, content=text)


# -- examples ------------------------------------------------------------------------------


def test_tokens_are_four_characters_each_plus_a_per_message_overhead() -> None:
    assert estimate_tokens(user("a" * 400)) == 100 + MESSAGE_OVERHEAD
    assert estimate_tokens(user("")) == MESSAGE_OVERHEAD
    assert estimate_tokens(user("abcde")) == 2 + MESSAGE_OVERHEAD  # rounded up
    with_call = assistant("", ["c1"])
    assert estimate_tokens(with_call) > MESSAGE_OVERHEAD  # call id, name and arguments count
    image = Message(role="user", content=[{"type": "text", "text": "abcd"}, {"type": "image_url", "image_url": {}}])
    assert estimate_tokens(image) == 1 + MESSAGE_OVERHEAD + 85


def test_window_by_message_count_keeps_the_newest() -> None:
    conversation = [user("1"), assistant("2"), user("3"), assistant("4"), user("5")]
    assert [m.content for m in trim(conversation, 3, None)] == ["3", "4", "5"]


def test_window_by_tokens_keeps_the_newest() -> None:
    conversation = [user("a" * 400), assistant("b" * 40), user("c" * 40)]  # 104, 14, 14 tokens
    assert [m.text()[0] for m in trim(conversation, 100, 30)] == ["b", "c"]
    assert [m.text()[0] for m in trim(conversation, 100, 200)] == ["a", "b", "c"]


def test_window_never_splits_a_call_from_its_results() -> None:
    conversation = [user("q"), assistant("", ["c1", "c2"]), result("c1"), result("c2"), assistant("a")]
    # 3 messages would start at result c2: the whole group goes instead.
    assert roles(trim(conversation, 3, None)) == ["assistant"]
    assert roles(trim(conversation, 4, None)) == ["assistant", "tool", "tool", "assistant"]


def test_the_newest_group_is_kept_even_alone_over_the_limits() -> None:
    conversation = [user("q"), assistant("", ["c1", "c2"]), result("c1"), result("c2")]
    assert roles(trim(conversation, 1, 1)) == ["assistant", "tool", "tool"]
    assert roles(trim([user("x" * 1000)], 1, 1)) == ["user"]


def test_leading_tool_results_are_orphans_and_dropped() -> None:
    assert trim([result("c0"), user("q")], 10, None) == [user("q")]
    assert trim([result("c0")], 10, None) == []
    assert window_start([], 5, None) == 0


def test_for_model_drops_unanswered_calls_and_orphan_results() -> None:
    conversation = [
        result("orphan"),
        user("q"),
        assistant("thinking", ["c1", "c2"]),
        result("c1"),
        result("c1"),  # a duplicate
        result("zz"),  # not a call of this message
        user("next"),
        assistant("", ["c3"]),  # never answered, no text: dropped entirely
        user("last"),
    ]
    out = for_model(conversation)
    assert roles(out) == ["user", "assistant", "tool", "user", "user"]
    assert [c.id for c in out[1].tool_calls or []] == ["c1"]


def test_for_model_keeps_pending_calls_the_request_answers() -> None:
    conversation = [user("q"), assistant("", ["c1", "c2"]), result("c1")]
    assert pending_calls(conversation) == {"c2"}
    kept = for_model(conversation, answered_now={"c2"})
    assert [c.id for c in kept[1].tool_calls or []] == ["c1", "c2"]
    assert [c.id for c in for_model(conversation)[1].tool_calls or []] == ["c1"]
    # Only the last group can be pending: earlier unanswered calls are gone.
    later = [*conversation, user("more")]
    assert [c.id for c in for_model(later, answered_now={"c2"})[1].tool_calls or []] == ["c1"]


def test_pending_calls_of_a_finished_conversation_is_empty() -> None:
    assert pending_calls([user("q"), assistant("a")]) == set()
    assert pending_calls([]) == set()


# -- properties -----------------------------------------------------------------------------

texts = st.text(alphabet="abc xyz", max_size=60)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Well-formed conversations: each call group has results only for its own calls (the
    last group may still wait for some)."""
    ids = itertools.count()
    out: list[Message] = []
    for kind in draw(st.lists(st.sampled_from(["user", "assistant", "calls"]), max_size=25)):
        if kind == "user":
            out.append(user(draw(texts)))
        elif kind == "assistant":
            out.append(assistant(draw(texts) or "x"))
        else:
            calls = [f"c{next(ids)}" for _ in range(draw(st.integers(1, 3)))]
            out.append(assistant(draw(texts), calls))
            out.extend(result(c, draw(texts)) for c in calls)
    if out and draw(st.booleans()):
        calls = [f"c{next(ids)}" for _ in range(draw(st.integers(1, 3)))]
        out.append(assistant("", calls))
        out.extend(result(c) for c in calls[: draw(st.integers(0, len(calls)))])
    return out


@st.composite
def anything(draw: st.DrawFn) -> list[Message]:
    """Arbitrary message sequences: orphans, duplicates, results of someone else's calls."""
    pool = ["c0", "c1", "c2", "c3"]
    out: list[Message] = []
    for kind in draw(st.lists(st.sampled_from(["user", "assistant", "calls", "tool"]), max_size=25)):
        if kind == "user":
            out.append(user(draw(texts)))
        elif kind == "assistant":
            out.append(assistant(draw(texts)))
        elif kind == "calls":
            out.append(assistant(draw(texts), draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))))
        else:
            out.append(result(draw(st.sampled_from(pool)), draw(texts)))
    return out


limits = st.tuples(st.integers(1, 12), st.one_of(st.none(), st.integers(1, 200)))


def groups_of(messages: list[Message]) -> list[list[Message]]:
    groups: list[list[Message]] = []
    for message in messages:
        if message.role == "tool" and groups:
            groups[-1].append(message)
        elif message.role != "tool":
            groups.append([message])
    return groups


@settings(max_examples=300)
@given(conversations(), limits)
def test_property_a_window_holds_every_result_with_its_call_and_respects_the_limits(
    conversation: list[Message], limit: tuple[int, int | None]
) -> None:
    max_messages, max_tokens = limit
    window = trim(conversation, max_messages, max_tokens)
    assert window == conversation[len(conversation) - len(window):]  # a suffix
    if window:
        assert window[0].role != "tool"
    calls_so_far: set[str] = set()
    for message in window:
        calls_so_far.update(c.id for c in message.tool_calls or ())
        if message.role == "tool":
            assert message.tool_call_id in calls_so_far, "a tool result without its call"
    groups = groups_of(conversation)
    if not groups:
        assert window == []
        return
    total_tokens = sum(estimate_tokens(m) for m in window)
    over = len(window) > max_messages or (max_tokens is not None and total_tokens > max_tokens)
    if over:
        assert window == groups[-1], "only the newest group alone may exceed the limits"
    # Maximal: the group before the window would not have fitted.
    kept = groups_of(window)
    if len(kept) < len(groups):
        previous = groups[len(groups) - len(kept) - 1]
        grown = previous + window
        assert len(grown) > max_messages or (
            max_tokens is not None and sum(estimate_tokens(m) for m in grown) > max_tokens
        )


@settings(max_examples=300)
@given(anything(), limits, st.sets(st.sampled_from(["c0", "c1", "c2", "c3"])))
def test_property_what_reaches_the_model_pairs_every_call_with_its_result(
    messages: list[Message], limit: tuple[int, int | None], answered_now: set[str]
) -> None:
    out = for_model(trim(messages, *limit), answered_now)
    if out:
        assert out[0].role != "tool"
    index = 0
    while index < len(out):
        message = out[index]
        index += 1
        assert message.role != "tool", "a tool result that does not follow its call"
        if not message.tool_calls:
            continue
        ids = [c.id for c in message.tool_calls]
        answered = []
        while index < len(out) and out[index].role == "tool":
            answered.append(out[index].tool_call_id)
            index += 1
        assert len(answered) == len(set(answered)) and set(answered) <= set(ids)
        missing = set(ids) - set(answered)
        if missing:  # only the last group may wait, and only for what the request answers
            assert index == len(out) and missing <= answered_now
    assert for_model(out, answered_now) == out  # idempotent


@settings(max_examples=500)
@given(anything(), st.lists(anything(), max_size=3), limits)
def test_property_dropping_from_the_oldest_end_finds_the_same_window(
    first: list[Message], more: list[list[Message]], limit: tuple[int, int | None]
) -> None:
    """The in-process store's incremental window (a window, a few messages added, the
    oldest groups dropped) is the window of the whole list."""
    max_messages, max_tokens = limit
    items = [(m.role == "tool", estimate_tokens(m)) for m in first]
    start, tokens = drop_to_window(items, sum(t for _, t in items), max_messages, max_tokens)
    assert start == window_start(items, max_messages, max_tokens)
    kept = items[start:]
    assert tokens == sum(t for _, t in kept)
    for batch in more:
        kept = kept + [(m.role == "tool", estimate_tokens(m)) for m in batch]
        start, tokens = drop_to_window(kept, tokens + sum(estimate_tokens(m) for m in batch), max_messages, max_tokens)
        assert start == window_start(kept, max_messages, max_tokens)
        kept = kept[start:]
        assert tokens == sum(t for _, t in kept)

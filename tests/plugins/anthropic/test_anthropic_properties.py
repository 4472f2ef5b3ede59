"""Property tests of the translation: nothing is lost, roles always alternate, and a streamed
answer assembles to exactly what the same answer gives unstreamed (for any reply and any
way the bytes are split)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from anthropic_helpers import assemble, collect, config
from hypothesis import given, settings
from hypothesis import strategies as st

from robutler_kernel.testing.fake_anthropic import AnthropicAnswer, AnthropicReply, check_conversation
from robutler_plugin_anthropic.stream import MessageStream
from robutler_plugin_anthropic.translate import parse_message, request_body
from robutler_specs import LLMCall, Message, ProviderError

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=6)
arguments = st.dictionaries(text, json_values, max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """OpenAI conversations: any order of system, user and assistant messages (text and/or
    tool calls); the tool messages answering an assistant's calls follow it (in any order),
    as OpenAI requires."""
    messages: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["system", "user", "user-parts", "assistant"]))
        if kind == "assistant":
            calls = [{"id": f"c{n}_{i}_{draw(ids)}", "type": "function",
                      "function": {"name": draw(ids), "arguments": json.dumps(draw(arguments))}}
                     for i in range(draw(st.integers(0, 3)))]
            messages.append({"role": "assistant", "content": draw(text), **({"tool_calls": calls} if calls else {})})
            messages += [{"role": "tool", "tool_call_id": c["id"], "content": draw(text)}
                         for c in draw(st.permutations(calls))]
        elif kind == "user-parts":
            parts = [{"type": "text", "text": t} for t in draw(st.lists(text, max_size=3))]
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "system" if kind == "system" else "user", "content": draw(text)})
    return messages


def translated(messages: list[dict[str, Any]]) -> dict[str, Any]:
    call = LLMCall(model="anthropic/m", messages=msgspec.convert(messages, list[Message]))
    return dict(json.loads(request_body(call, config(), stream=False)))


def blocks(turn: dict[str, Any]) -> list[dict[str, Any]]:
    content = turn["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


@given(conversations())
@settings(max_examples=300, deadline=None)
def test_every_text_and_tool_call_id_is_kept(messages: list[dict[str, Any]]) -> None:
    sent = translated(messages)
    turns = sent["messages"]
    # texts of user and assistant messages, in order (tool results are moved, texts never)
    def texts(m: dict[str, Any]) -> list[str]:
        content = m.get("content")
        return [content] if isinstance(content, str) else [p["text"] for p in content or ()]
    expected = [t for m in messages if m["role"] in ("user", "assistant") for t in texts(m) if t]
    assert [b["text"] for t in turns for b in blocks(t) if b["type"] == "text"] == expected
    system = [m["content"] for m in messages if m["role"] == "system" and m["content"]]
    got_system = sent.get("system")
    assert (got_system if isinstance(got_system, list) else [{"text": got_system}] if got_system else []) == (
        [{"text": system[0]}] if len(system) == 1 else [{"type": "text", "text": s} for s in system])
    calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
             for m in messages for c in m.get("tool_calls", ())]
    assert [(b["id"], b["name"], b["input"]) for t in turns for b in blocks(t) if b["type"] == "tool_use"] == calls
    results = {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}
    assert {b["tool_use_id"]: b.get("content", "") for t in turns for b in blocks(t) if b["type"] == "tool_result"} == results


@given(conversations())
@settings(max_examples=300, deadline=None)
def test_turns_alternate_and_results_answer_the_turn_before(messages: list[dict[str, Any]]) -> None:
    turns = translated(messages)["messages"]
    roles = [t["role"] for t in turns]
    assert all(a != b for a, b in itertools.pairwise(roles))
    for turn in turns:
        kinds = [b["type"] for b in blocks(turn)]
        assert kinds, "an empty turn was sent"
        if turn["role"] == "user":  # results first, then the rest
            assert kinds == sorted(kinds, key=lambda k: k != "tool_result")
    if turns and turns[0]["role"] == "user":
        # what the real API would check (the fake's rules): only a conversation that starts
        # with a user turn is a valid Messages conversation on its own
        assert check_conversation({"model": "m", "max_tokens": 1, "messages": turns}) is None


@st.composite
def replies(draw: st.DrawFn) -> AnthropicReply:
    """Any scripted answer: text (split into any deltas), tool uses, thinking, any stop
    reason, any usage with cache tokens."""
    uses = [{"name": draw(ids), "input": draw(arguments), "id": f"toolu_{i}_{draw(ids)}"}
            for i in range(draw(st.integers(0, 3)))]
    content = draw(st.none() | st.lists(text, max_size=4).map("".join) if uses else st.lists(text, max_size=4).map("".join))
    chunks = None
    if content and draw(st.booleans()):
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(content) - 1)), max_size=4)))
        chunks = [content[a:b] for a, b in zip([0, *cuts], [*cuts, len(content)], strict=True) if content[a:b]]
    counts = st.integers(0, 10_000)
    usage = {"input_tokens": draw(counts), "output_tokens": draw(counts)}
    for key in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        if draw(st.booleans()):
            usage[key] = draw(counts)
    return AnthropicReply(content=content, tool_uses=uses, chunks=chunks, usage=usage,
                          thinking=draw(st.none() | text),
                          stop_reason=draw(st.none() | st.sampled_from(
                              ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"])))


async def _pieces(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
        yield data[a:b]


async def _noop() -> None:
    return None


def streamed(events: bytes, cuts: list[int]) -> dict[str, Any]:
    stream = MessageStream(_pieces(events, cuts), _noop, lambda exc: ProviderError(str(exc)), "m")
    return assemble(asyncio.run(collect(stream)))


@given(replies(), st.data())
@settings(max_examples=200, deadline=None)
def test_a_stream_assembles_to_the_unstreamed_answer(reply: AnthropicReply, data: st.DataObject) -> None:
    answer = AnthropicAnswer(reply, {"model": "m", "messages": [{"role": "user", "content": "q"}]})
    whole = parse_message(msgspec.json.encode(answer.message("msg_1")), "m")
    events = b"".join(answer.events("msg_1"))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(events) - 1), max_size=6)))
    got = streamed(events, cuts)
    assert got["text"] == (whole.message.content or "")
    assert got["tool_calls"] == [(c.id, c.function.name, json.loads(c.function.arguments))
                                 for c in whole.message.tool_calls or ()]
    assert got["indexes"] == list(range(len(got["tool_calls"])))
    assert got["finish_reason"] == whole.finish_reason
    assert got["usage"] == whole.usage

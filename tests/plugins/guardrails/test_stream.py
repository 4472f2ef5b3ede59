"""Streaming redaction is exact: every way of cutting a text into chunks gives what
redacting the whole text gives; through the kernel, the client, memory and on_message all
see the redacted answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robutler_plugin_memory as memory
from robutler_kernel.testing import kernel_client
from robutler_plugin_guardrails import Redactor
from robutler_specs import Message, RequestContext, Skill, hookimpl

from .helpers import SAMPLES, agent, answer, chat, kernel, stream, streamed_text

PIECES = [v for v, _ in SAMPLES.values()] + [
    "4111 1111 1111 1112", "GB82WEST12345698765432", "+44 20 7946 0958", "::1", "fe80::1", "ghp_" + "a1B2" * 10,
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "a@b", "@", "1234", "12-34", "+",
    " ", "  ", "\n", ", ", ".", "-", ":", "(", ")", "é", "😀", "word", "x" * 40,
]

texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(alphabet="0123456789 -+.:@aZ_/()", max_size=8)),
                 max_size=14).map("".join)


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@pytest.mark.parametrize("style", ["label", "hash", "mask"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=40))
def test_every_split_redacts_as_the_whole(style: str, text: str, cuts: list[int]) -> None:
    redactor = Redactor(style=style, hash_key=b"k")  # type: ignore[arg-type]
    whole = redactor.redact(text)
    s = redactor.stream()
    assert "".join(s.feed(piece) for piece in chunked(text, cuts)) + s.flush() == whole


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_one_character_at_a_time(text: str) -> None:
    redactor = Redactor()
    s = redactor.stream()
    assert "".join(s.feed(ch) for ch in text) + s.flush() == redactor.redact(text)


def test_the_look_behind_is_bounded_and_prose_flows() -> None:
    s = Redactor().stream()
    out = []
    for word in ("The quick brown fox jumps over the lazy dog. " * 50).split(" "):
        out.append(s.feed(word + " "))
        assert s.held <= 16  # the last word or so, not the answer
    assert all(out[5:-1])  # text keeps flowing, a word behind
    hold = Redactor().stream()
    hold.feed("x" * 10_000)
    assert hold.held <= 1700  # the longest match any detector allows


# -- through the kernel ---------------------------------------------------------------------

PII_ANSWER = "Sure: write to john.doe@example.com or use card 4111 1111 1111 1111, key " + SAMPLES["secret"][0] + "."
REDACTED = "Sure: write to [EMAIL] or use card [CARD], key [SECRET]."


class Seen(Skill):
    """Records the final assistant message as on_message hooks after guardrails see it."""

    name = "gr_seen"
    final: list[str] = []

    @hookimpl
    def on_message(self, ctx: RequestContext, message: Message) -> None:
        if message.role == "assistant":
            Seen.final.append(message.text())


def scripted_agent(**extra: Any) -> dict[str, Any]:
    config = agent({"pii": {"input": False}}, model="scripted/leak", scripts={"leak": [{"content": PII_ANSWER}]}, **extra)
    config["skills"]["gr_seen"] = None
    config["skills"]["short_term_memory"] = {"backend": "memory"}
    return config


async def test_a_streamed_answer_is_redacted_as_the_json_one_and_memory_keeps_that() -> None:
    Seen.final = []
    k = kernel({"bot": scripted_agent()}, plugins=[Seen, memory])
    async with kernel_client(k) as client:
        assert answer(await chat(client, "hi", **{"X-Conversation-Id": "c1"})) == REDACTED
        chunks = await stream(client, "hi")
        skill = next(s for s in k.agent("bot").skills if isinstance(s, memory.ShortTermMemory))
        stored = await skill.store.load(skill.config.key_prefix + "bot:c:anon:c1")
    assert streamed_text(chunks) == REDACTED
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert Seen.final == [REDACTED, REDACTED]
    assert stored and all("john.doe" not in m.text() and "4111" not in m.text() for m in stored)
    assert stored[-1].text() == REDACTED


async def test_a_handoff_answer_streams_redacted_too() -> None:
    front = agent({}, model="scripted/route", scripts={"route": [{"tool_calls": [{"name": "transfer_to_billing"}]}]},
                  handoffs=["billing"])
    billing = {"model": "scripted/leak", "skills": {"scripted": {"scripts": {"leak": [{"content": PII_ANSWER}]}}}}
    k = kernel({"front": front, "billing": billing})
    async with kernel_client(k) as client:
        assert answer(await chat(client, "hi", agent_name="front")) == REDACTED
        assert streamed_text(await stream(client, "hi", agent_name="front")) == REDACTED

"""Automatic retrieval: documents close to the last user message reach the model's prompt,
at most ``top_k`` of them and none under ``min_score``."""

from __future__ import annotations

from pathlib import Path

from robutler_kernel.testing import kernel_client
from robutler_plugin_vector.milvus import Hit
from robutler_plugin_vector.skill import format_hits

from .helpers import VectorPromptSpy, chat, search, store, vector_kernel


def documents_in(prompt: str) -> list[str]:
    return [line.split(") ", 1)[1] for line in prompt.splitlines() if line.startswith("[")]


async def test_top_k_and_min_score_decide_what_is_injected(tmp_path: Path) -> None:
    uri = str(tmp_path / "v.db")
    docs = ["Norway revenue grew", "revenue of Norway", "Norway has long fjords", "A recipe for banana bread"]
    config = {"uri": uri, "retrieve": {"enabled": True, "top_k": 2, "min_score": 0.45}}
    kernel = vector_kernel({"bot": config}, spy=True)
    async with kernel_client(kernel) as client:
        for doc in docs:
            await store(client, "bot", "alice", doc)
        scores = {h["text"]: h["score"] for h in await search(client, "bot", "alice", "Norway revenue", top_k=4)}
        VectorPromptSpy.seen.clear()
        await chat(client, "bot", "Norway revenue", user="alice")
        await chat(client, "bot", "banana", user="alice")  # one word of a longer document: below 0.45
        await chat(client, "bot", "Norway revenue", user="bob")
        await chat(client, "bot", "Norway revenue")  # anonymous
    first, banana, bob, anonymous = VectorPromptSpy.seen
    # the two best documents, best first, with their scores; not the fjords (3rd), not bread
    assert scores[docs[0]] > scores[docs[1]] > scores[docs[2]] > 0.2 > scores[docs[3]]
    assert documents_in(first) == docs[:2]
    assert first.startswith("You are a test agent.\n\nVector memory: documents this user stored")
    assert f"score {scores[docs[0]]:.2f}" in first
    assert banana == bob == anonymous == "You are a test agent."


async def test_min_score_filters_even_within_top_k(tmp_path: Path) -> None:
    config = {"uri": str(tmp_path / "v.db"), "retrieve": {"enabled": True, "top_k": 5, "min_score": 0.7}}
    kernel = vector_kernel({"bot": config}, spy=True)
    async with kernel_client(kernel) as client:
        await store(client, "bot", "u", "solar panels on the roof")
        await store(client, "bot", "u", "solar panels")
        VectorPromptSpy.seen.clear()
        await chat(client, "bot", "solar panels", user="u")
    assert documents_in(VectorPromptSpy.seen[0]) == ["solar panels"]


async def test_retrieval_is_off_by_default(tmp_path: Path) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db")}}, spy=True)
    async with kernel_client(kernel) as client:
        await store(client, "bot", "u", "solar panels")
        VectorPromptSpy.seen.clear()
        await chat(client, "bot", "solar panels", user="u")
    assert VectorPromptSpy.seen == ["You are a test agent."]


def test_injected_text_is_capped_and_a_long_document_is_cut() -> None:
    hits = [Hit("a" * 32, "word " * 100, {}, 0.9), Hit("b" * 32, "short", {}, 0.8)]
    text = format_hits(hits, 300)
    assert text is not None and len(text) <= 300 and text.endswith("…")
    assert format_hits([], 1000) is None

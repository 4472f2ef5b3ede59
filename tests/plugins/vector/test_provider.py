"""Embeddings come from a ``robutler_embed`` plugin when one answers; the choice is kept,
and a collection never mixes vectors of different embedders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import robutler_plugin_scripted as scripted
import robutler_plugin_vector as vector
from robutler_kernel.testing import kernel_client, make_kernel

from .helpers import chat, search, store, vector_kernel


def vector_skill(kernel: Any) -> Any:
    return next(s for s in kernel.agent("bot").skills if s.name == "vector_memory")


async def test_a_registered_embed_plugin_provides_the_vectors(tmp_path: Path, vector_embed_plugin: Any) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db")}}, plugins=[vector_embed_plugin])
    async with kernel_client(kernel) as client:
        car = await store(client, "bot", "u", "I bought a new automobile")
        await store(client, "bot", "u", "my puppy is cute")
        hits = await search(client, "bot", "u", "car", top_k=2)
    # "car" shares no word with "automobile": only the provider's space finds it
    assert hits[0]["id"] == car and hits[0]["score"] > 0.9
    assert (["I bought a new automobile"], None) in vector_embed_plugin.CALLS
    assert (["car"], None) in vector_embed_plugin.CALLS
    skill = vector_skill(kernel)
    assert skill.embeddings.identity == "provider:default"


async def test_embedding_model_is_passed_to_the_provider(tmp_path: Path, vector_embed_plugin: Any) -> None:
    config = {"uri": str(tmp_path / "v.db"), "embedder": "provider", "embedding_model": "toy/semantic"}
    kernel = vector_kernel({"bot": config}, plugins=[vector_embed_plugin])
    async with kernel_client(kernel) as client:
        await store(client, "bot", "u", "the sea")
    assert vector_embed_plugin.CALLS == [(["the sea"], "toy/semantic")]


async def test_hashing_embedder_never_asks_the_provider(tmp_path: Path, vector_embed_plugin: Any) -> None:
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db"), "embedder": "hashing"}}, plugins=[vector_embed_plugin])
    async with kernel_client(kernel) as client:
        await store(client, "bot", "u", "I bought a new automobile")
        hits = await search(client, "bot", "u", "car")
    assert [h["score"] for h in hits] == [0.0]  # lexical: no word in common
    assert vector_embed_plugin.CALLS == []
    assert vector_skill(kernel).embeddings.identity == "hashing-v1/256"


async def test_provider_mode_without_a_provider_is_a_clear_503(tmp_path: Path, vector_embed_plugin: Any) -> None:
    vector_embed_plugin.MODE = "none"
    kernel = vector_kernel({"bot": {"uri": str(tmp_path / "v.db"), "embedder": "provider"}}, plugins=[vector_embed_plugin])
    async with kernel_client(kernel) as client:
        message = await chat(client, "bot", 'call store_document text="x y"', user="u", status=503)
    assert "no plugin answered robutler_embed" in message and "embedder: hashing" in message


async def test_a_failing_provider_is_a_503_and_nothing_is_stored(tmp_path: Path, vector_embed_plugin: Any) -> None:
    uri = str(tmp_path / "v.db")
    kernel = vector_kernel({"bot": {"uri": uri}}, plugins=[vector_embed_plugin])
    async with kernel_client(kernel) as client:
        await store(client, "bot", "u", "first document about the ocean")
        vector_embed_plugin.MODE = "down"
        message = await chat(client, "bot", 'call store_document text="second about the coast"', user="u", status=503)
        assert message == "toy embedding service is down"  # the provider's own error
        vector_embed_plugin.MODE = "on"
        hits = await search(client, "bot", "u", "sea", top_k=5)
    assert [h["text"] for h in hits] == ["first document about the ocean"]


async def test_a_collection_of_another_dimension_is_refused_with_the_setting_to_change(
    tmp_path: Path, vector_embed_plugin: Any
) -> None:
    uri = str(tmp_path / "v.db")
    async with kernel_client(vector_kernel({"bot": {"uri": uri, "embedder": "hashing"}})) as client:
        await store(client, "bot", "u", "filled by the hashing embedder")
    kernel = vector_kernel({"bot": {"uri": uri}}, plugins=[vector_embed_plugin])
    async with kernel_client(kernel) as client:
        message = await chat(client, "bot", 'call search_memory query="anything"', user="u", status=503)
    assert "collection robutler_vector_memory holds 256-dimensional vectors" in message
    assert "(provider:default) makes 5-dimensional ones" in message
    assert "skills.vector_memory.collection" in message


async def test_embeddings_from_the_openai_plugin(tmp_path: Path, fake_openai: Any) -> None:
    """The real provider plugin (robutler-plugin-openai) against the kernel's fake upstream."""
    import robutler_plugin_openai

    config = {"uri": str(tmp_path / "v.db"), "embedding_model": "openai/text-embedding-3-small"}
    kernel = make_kernel(
        {"bot": {
            "model": "scripted/echo",
            "skills": {"openai": {"base_url": fake_openai.base_url, "api_key": "test"}, "vector_memory": config},
        }},
        plugins=[scripted, vector, robutler_plugin_openai],
    )
    async with kernel_client(kernel) as client:
        doc = await store(client, "bot", "u", "a note about tulips")
        hits = await search(client, "bot", "u", "a note about tulips")
    embedded = [r.json for r in fake_openai.requests if r.path.endswith("/embeddings")]
    assert [e["input"] for e in embedded] == [["a note about tulips"], ["a note about tulips"]]
    assert {e["model"] for e in embedded} == {"text-embedding-3-small"}
    assert hits[0]["id"] == doc and hits[0]["score"] > 0.99
    assert vector_skill(kernel).embeddings.identity == "provider:openai/text-embedding-3-small"

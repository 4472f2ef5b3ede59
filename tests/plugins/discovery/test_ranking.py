"""Ranking: BM25 by default, vectors when a ``robutler_embed`` plugin answers, served as
``GET /agents`` in place of the kernel's simple search."""

from __future__ import annotations

import importlib.metadata

from hypothesis import given, settings
from hypothesis import strategies as st

from robutler_kernel.testing import StandaloneKernel, kernel_client
from robutler_plugin_discovery.entries import AgentEntry
from robutler_plugin_discovery.ranking import bm25, document, words
from robutler_plugin_discovery.search import Ranker

from .helpers import CATALOGUE, ToyEmbedder, catalogue_agents, discovery_kernel, toy_vector


def entries() -> list[AgentEntry]:
    return [AgentEntry(name, description, tuple(intents)) for name, (description, intents) in CATALOGUE.items()]


def test_the_entry_point_is_discoverable() -> None:
    names = [ep.name for ep in importlib.metadata.entry_points(group="robutler.plugins")]
    assert "discovery" in names


def test_words_split_names_and_ignore_case() -> None:
    assert words("Weather_Bot: 3-day FORECAST") == ["weather", "bot", "3", "day", "forecast"]


def test_bm25_prefers_the_rarer_and_the_repeated_word() -> None:
    docs = [document("a", "weather weather", []), document("b", "weather", []), document("c", "news", [])]
    scores = bm25("weather", docs)
    assert scores[0] > scores[1] > scores[2] == 0.0
    assert bm25("", docs) == [0.0, 0.0, 0.0]


def test_intents_weigh_more_than_the_description() -> None:
    docs = [document("a", "refund", ["other"]), document("b", "other", ["refund"])]
    a, b = bm25("refund", docs)
    assert b > a > 0


async def test_lexical_ranking_lists_only_matching_agents_best_first() -> None:
    ranker = Ranker(None)
    found = await ranker.rank(entries(), "refund my invoice", 10)
    assert [e.name for e, _ in found] == ["billing"]
    everything = await ranker.rank(entries(), "  ", 2)
    assert [e.name for e, _ in everything] == ["billing", "translator"] and ranker.last_mode == "lexical"


async def test_vector_ranking_finds_synonyms_and_caches_agent_vectors() -> None:
    calls: list[list[str]] = []

    async def embed(texts: list[str], model: str | None) -> list[list[float]]:
        calls.append(texts)
        return [toy_vector(t) for t in texts]

    ranker = Ranker(StandaloneKernel(embed=embed))
    found = await ranker.rank(entries(), "will it rain", 3)
    assert ranker.last_mode == "vector" and [e.name for e, _ in found] == ["weather"]
    assert len(calls[0]) == 1 + len(CATALOGUE)
    await ranker.rank(entries(), "money back", 3)
    assert calls[1] == ["money back"]  # the agents' vectors came from the cache


async def test_vectors_fall_back_to_lexical_when_embed_answers_none_fails_or_misshapes() -> None:
    async def none(texts: list[str], model: str | None) -> None:
        return None

    async def boom(texts: list[str], model: str | None) -> list[list[float]]:
        raise RuntimeError("down")

    async def short(texts: list[str], model: str | None) -> list[list[float]]:
        return [[1.0]]

    for embed in (none, boom, short):
        ranker = Ranker(StandaloneKernel(embed=embed))
        found = await ranker.rank(entries(), "translate languages", 3)
        assert ranker.last_mode == "lexical" and [e.name for e, _ in found] == ["translator"]


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(st.text(alphabet="abcde ", max_size=30), min_size=1, max_size=8),
    query=st.text(alphabet="abcde ", max_size=12),
    top_k=st.integers(min_value=0, max_value=10),
)
def test_property_lexical_ranking(docs: list[str], query: str, top_k: int) -> None:
    import asyncio

    items = [AgentEntry(f"agent{i}", text) for i, text in enumerate(docs)]
    found = asyncio.run(Ranker(None).rank(items, query, top_k))
    scores = [s for _, s in found]
    assert len(found) <= top_k
    assert scores == sorted(scores, reverse=True)
    if query.strip():
        # Listed exactly when an agent shares a word with the query (up to top_k).
        terms = set(words(query))
        matching = [e for e in items if terms & set(words(e.text))]
        assert all(terms & set(words(e.text)) for e, _ in found)
        assert len(found) == min(top_k, len(matching))
    else:
        assert len(found) == min(top_k, len(items))


async def test_get_agents_is_served_by_the_plugin_lexically() -> None:
    kernel = discovery_kernel(catalogue_agents(), {"public_url": "https://agents.example.com"})
    async with kernel_client(kernel) as client:
        response = await client.get("/agents", params={"search": "temperature forecast", "top_k": 5})
        everything = await client.get("/agents")
        bad = await client.get("/agents", params={"top_k": "many"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["ranking"] == "lexical"
    [weather] = body["data"]
    assert weather["name"] == "weather" and weather["intents"] == ["weather forecast", "temperature"]
    assert weather["url"] == "https://agents.example.com/weather" and weather["score"] > 0
    assert weather["source"] == "local"
    assert [a["name"] for a in everything.json()["data"]] == ["billing", "translator", "weather"]
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "top_k"


async def test_get_agents_ranks_by_vectors_with_an_embedding_plugin() -> None:
    embedder = ToyEmbedder()
    kernel = discovery_kernel(catalogue_agents(), plugins=[embedder])
    async with kernel_client(kernel) as client:
        rain = (await client.get("/agents", params={"search": "umbrella needed?"})).json()
        embedder.fail = True
        fallback = (await client.get("/agents", params={"search": "umbrella needed?"})).json()
    assert rain["ranking"] == "vector" and [a["name"] for a in rain["data"]] == ["weather"]
    assert "url" not in rain["data"][0]  # no public_url: local agents have no absolute URL
    assert fallback["ranking"] == "lexical" and fallback["data"] == []


async def test_ranking_lexical_never_embeds() -> None:
    embedder = ToyEmbedder()
    kernel = discovery_kernel(catalogue_agents(), {"ranking": "lexical"}, plugins=[embedder])
    async with kernel_client(kernel) as client:
        body = (await client.get("/agents", params={"search": "refund"})).json()
    assert body["ranking"] == "lexical" and [a["name"] for a in body["data"]] == ["billing"]
    assert embedder.calls == []

"""``robutler_embed`` through a live openai skill's client."""

from __future__ import annotations

import pytest
from openai_helpers import KERNEL, run, started

import robutler_plugin_openai
from robutler_kernel.testing import FakeOpenAI
from robutler_kernel.testing.fake_openai import embed_text
from robutler_plugin_openai import registry
from robutler_plugin_openai.config import DEFAULT_EMBEDDING_MODEL
from robutler_specs import ProviderError

embed = robutler_plugin_openai.robutler_embed


def test_no_live_skill_means_no_answer(fake: FakeOpenAI) -> None:
    assert registry.live(KERNEL.state) == []
    assert run(embed(texts=["a"], model=None, kernel=KERNEL)) is None
    assert fake.requests == []


def test_embeds_with_the_default_model(fake: FakeOpenAI) -> None:
    async def body() -> list[list[float]] | None:
        async with started(fake):
            return await embed(texts=["alpha", "beta"], model=None, kernel=KERNEL)
    vectors = run(body())
    assert vectors == [pytest.approx(embed_text("alpha")), pytest.approx(embed_text("beta"))]
    sent = fake.last_request
    assert sent.path == "/v1/embeddings" and sent.json["model"] == DEFAULT_EMBEDDING_MODEL
    assert sent.json["input"] == ["alpha", "beta"] and sent.headers["authorization"] == "Bearer test-key"


def test_configured_and_asked_for_models(fake: FakeOpenAI) -> None:
    async def body() -> None:
        async with started(fake, api_key="plain"), started(fake, api_key="embedder", embedding_model="nomic-embed"):
            await embed(texts=["x"], model=None, kernel=KERNEL)
            assert fake.last_request.json["model"] == "nomic-embed"
            assert fake.last_request.headers["authorization"] == "Bearer embedder"
            await embed(texts=["x"], model="openai/text-embedding-3-large", kernel=KERNEL)
            assert fake.last_request.json["model"] == "text-embedding-3-large"
            assert fake.last_request.headers["authorization"] == "Bearer plain"  # the oldest skill
            assert await embed(texts=["x"], model="cohere/embed-v3", kernel=KERNEL) is None
            assert await embed(texts=[], model=None, kernel=KERNEL) == []
    run(body())
    assert registry.live(KERNEL.state) == []  # stop() unlisted both


def test_embedding_errors_are_mapped(fake: FakeOpenAI) -> None:
    fake.add_error(500, "embedding backend down")

    async def body() -> None:
        async with started(fake):
            with pytest.raises(ProviderError, match="embedding backend down"):
                await embed(texts=["x"], model=None, kernel=KERNEL)
    run(body())

"""Fixtures: one FakeOpenAI (in a thread) per module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robutler_kernel.testing import FakeOpenAI


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(_server: FakeOpenAI) -> FakeOpenAI:
    """The module's fake upstream, with no queued replies and no recorded requests."""
    _server.reset()
    return _server


@pytest.fixture(params=["sdk", "direct"], autouse=True)
def openai_transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs on both chat transports: they must behave the same."""
    from openai_helpers import TRANSPORT

    TRANSPORT["name"] = request.param
    yield request.param
    TRANSPORT["name"] = "sdk"

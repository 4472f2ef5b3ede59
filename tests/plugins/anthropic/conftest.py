"""Fixtures: one FakeAnthropic (in a thread) per module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robutler_kernel.testing import FakeAnthropic


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake(_server: FakeAnthropic) -> FakeAnthropic:
    """The module's fake upstream: no queued replies, no recorded requests, any key."""
    _server.reset()
    _server.api_key = None
    _server.check_conversation = True
    return _server

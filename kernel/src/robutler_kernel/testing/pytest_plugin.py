"""The pytest plugin shipped with the kernel (entry point ``pytest11``: ``robutler``).

Fixtures:

* ``fake_openai`` -- a started :class:`~robutler_kernel.testing.FakeOpenAI` on a loopback port.
* ``fake_anthropic`` -- a started :class:`~robutler_kernel.testing.FakeAnthropic` on a loopback port.
* ``hook_recorder`` -- a fresh :class:`~robutler_kernel.testing.HookRecorder`.
* ``kernel_factory`` -- :func:`~robutler_kernel.testing.make_kernel`, with explicit plugins.
* ``live_server`` -- a function serving a kernel over real HTTP for the test's duration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def fake_openai() -> Iterator[Any]:
    """A fake OpenAI-compatible server on a loopback port (``.base_url`` ends in ``/v1``)."""
    from .fake_openai import FakeOpenAI

    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_anthropic() -> Iterator[Any]:
    """A fake Anthropic Messages API on a loopback port (``.base_url`` is the API root)."""
    from .fake_anthropic import FakeAnthropic

    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def hook_recorder() -> Any:
    """A hook recorder; pass it as ``kernel_factory(..., recorder=hook_recorder)``."""
    from .kit import HookRecorder

    return HookRecorder()


@pytest.fixture
def kernel_factory() -> Callable[..., Any]:
    """Build kernels with an explicit plugin list: ``kernel_factory(agents, plugins=[...])``."""
    from .kit import make_kernel

    return make_kernel


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], str]]:
    """``url = live_server(kernel)`` serves ``kernel`` on Hypercorn until the test ends."""
    from .kit import LiveServer

    servers: list[LiveServer] = []

    def start(kernel: Any) -> str:
        server = LiveServer(kernel).__enter__()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.__exit__(None, None, None)

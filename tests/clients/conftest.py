"""The client compliance suite: real client libraries against an agent served over HTTP.

One :class:`~robutler_kernel.testing.FakeOpenAI` (the upstream, with scripted replies and
exact usage) and one kernel served by :class:`~robutler_kernel.testing.LiveServer` (a real
socket, so each library's own HTTP client is used) per test module.

The client libraries are not in ``requirements-dev.txt``: ``scripts/test-clients`` (and
``tox -e clients``) install ``requirements-clients.txt`` into a virtualenv of their own and
set ``ROBUTLER_CLIENT_SUITE=1``. Without that variable and with a library missing (the
default ``scripts/test`` run), the whole folder is left out of collection and the run says
so at its end; with it, a missing library is an error, so nothing is hidden where the suite
is meant to run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

import pytest

# LiteLLM fetches its model price list from the network on import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: Each test module and the import names of the client libraries it drives.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "test_openai_client.py": ("openai",),
    "test_agents_sdk.py": ("openai", "agents"),
    "test_pydantic_ai.py": ("openai", "pydantic_ai"),
    "test_langchain.py": ("langchain_openai", "langchain_core"),
    "test_litellm.py": ("litellm",),
}
MISSING = sorted({name for names in LIBRARIES.values() for name in names if find_spec(name) is None})
REQUIRED = os.environ.get("ROBUTLER_CLIENT_SUITE") == "1"

if MISSING and REQUIRED:
    raise pytest.UsageError(
        f"the client compliance suite needs {', '.join(MISSING)}: "
        "install requirements-clients.txt (scripts/test-clients does)"
    )
collect_ignore = sorted(LIBRARIES) if MISSING else []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say that the suite was left out, and how to run it."""
    if MISSING:
        terminalreporter.write_line(
            f"tests/clients not collected: {', '.join(MISSING)} not installed "
            "(scripts/test-clients or tox -e clients runs the client compliance suite)"
        )


#: The agents served, by the openai plugin's chat transport they use.
TRANSPORTS = {"sdk": "helper", "direct": "helper-direct"}


def agent_config(upstream: str, transport: str) -> dict[str, Any]:
    """An agent on the openai plugin against the fake upstream, with one tool of its own."""
    return {
        "description": "The client compliance suite's agent",
        "instructions": "You are a test agent.",
        "model": "openai/fake-model",
        "retry": {"attempts": 1},  # an upstream failure reaches the client as it is
        "skills": {"openai": {"api_key": "test", "base_url": upstream, "timeout": 10, "transport": transport}},
        "tools": ["tests.clients.agent_tools:get_weather"],
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    """The module's fake OpenAI upstream."""
    from robutler_kernel.testing import FakeOpenAI

    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream: Any) -> Iterator[Any]:
    """The module's kernel on a real loopback socket, serving one agent per transport."""
    import robutler_plugin_openai
    from robutler_kernel.testing import LiveServer, make_kernel

    agents = {name: agent_config(upstream.base_url, transport) for transport, name in TRANSPORTS.items()}
    kernel = make_kernel(agents, plugins=[robutler_plugin_openai])
    with LiveServer(kernel) as live:
        yield live


@pytest.fixture
def fake(upstream: Any) -> Any:
    """The fake upstream with no queued replies and no recorded requests."""
    upstream.reset()
    return upstream


@pytest.fixture(params=sorted(TRANSPORTS))
def agent(request: pytest.FixtureRequest) -> str:
    """The agent's name (the ``model`` clients send); every test runs on both transports."""
    return TRANSPORTS[request.param]


@pytest.fixture
def base_url(server: Any) -> str:
    """The OpenAI-compatible root clients point at: ``http://127.0.0.1:PORT/v1``."""
    return f"{server.url}/v1"

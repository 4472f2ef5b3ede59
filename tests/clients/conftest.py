"""The client compliance suite: real client libraries against an agent served over HTTP.

One :class:`~robutler_kernel.testing.FakeOpenAI` (the upstream, with scripted replies and
exact usage) and one kernel served by :class:`~robutler_kernel.testing.LiveServer` (a real
socket, so each library's own HTTP client is used) per test module.

The client libraries are not in ``requirements-dev.txt``: ``scripts/test-clients`` (and
``tox -e clients``) install ``requirements-clients.txt`` into a virtualenv of their own, the
Vercel AI SDK (npm) into ``tests/clients/vercel/node_modules`` (``npm ci``), and set
``ROBUTLER_CLIENT_SUITE=1``. Without that variable and with a library missing (the
default ``scripts/test`` run), the whole folder is left out of collection and the run says
so at its end; with it, a missing library is an error, so nothing is hidden where the suite
is meant to run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
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
    "test_vercel_ai_sdk.py": (),  # Node.js packages: see missing_node_packages
}

#: The Vercel AI SDK's folder: package.json pins it, ``npm ci`` installs it there.
VERCEL = Path(__file__).parent / "vercel"


def missing_node_packages(folder: Path = VERCEL) -> list[str]:
    """What ``test_vercel_ai_sdk.py`` lacks: ``node`` itself, and each npm package of
    ``folder/package.json`` not installed in ``folder/node_modules`` at its pinned version."""
    missing = [] if shutil.which("node") else ["node (Node.js)"]
    pins = json.loads((folder / "package.json").read_text())["dependencies"]
    for name, version in sorted(pins.items()):
        installed = folder / "node_modules" / name / "package.json"
        if not installed.is_file() or json.loads(installed.read_text()).get("version") != version:
            missing.append(f"{name}@{version} (npm ci in tests/clients/vercel)")
    return missing


MISSING = sorted({name for names in LIBRARIES.values() for name in names if find_spec(name) is None})
MISSING += missing_node_packages()
REQUIRED = os.environ.get("ROBUTLER_CLIENT_SUITE") == "1"

if MISSING and REQUIRED:
    raise pytest.UsageError(
        f"the client compliance suite needs {', '.join(MISSING)}: "
        "install requirements-clients.txt and the npm packages of tests/clients/vercel "
        "(scripts/test-clients does both)"
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
    # No background health checks: their GET /models, every 15 s, would land among the
    # upstream requests a test inspects (a module that runs longer than that flaked).
    kernel = make_kernel(agents, plugins=[robutler_plugin_openai],
                         server={"metrics_port": None, "health": {"interval": 0}})
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

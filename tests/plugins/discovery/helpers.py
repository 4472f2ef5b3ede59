"""Helpers of the discovery tests: a kernel with the plugin, keys, a clock, a toy embedder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import robutler_plugin_auth as auth
import robutler_plugin_discovery as discovery
import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_specs import hookimpl

ALICE_KEY = "alice-key-0123456789abcdefghijklmnop"
BOB_KEY = "bob-key-0123456789abcdefghijklmnopqrs"
ROOT_KEY = "root-key-0123456789abcdefghijklmnopq"

#: The registry door's auth: alice and bob register, root is an admin.
REGISTRY_AUTH = {
    "api_keys": [
        {"key": ALICE_KEY, "user_id": "alice"},
        {"key": BOB_KEY, "user_id": "bob"},
        {"key": ROOT_KEY, "user_id": "root", "scopes": ["admin"]},
    ],
    "allow_anonymous": True,
}

#: Agents of a small catalogue (name: description, intents).
CATALOGUE = {
    "weather": ("Forecasts and current conditions", ["weather forecast", "temperature"]),
    "billing": ("Invoices, payments and refunds", ["pay an invoice", "refund"]),
    "translator": ("Translates text between languages", ["translate", "languages"]),
}


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def catalogue_agents(**extra: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The catalogue as agent configs on ``scripted/echo`` (plus ``extra`` agents)."""
    agents: dict[str, dict[str, Any]] = {
        name: {"model": "scripted/echo", "description": description, "intents": intents}
        for name, (description, intents) in CATALOGUE.items()
    }
    agents.update({name: dict(spec) for name, spec in extra.items()})
    return agents


def discovery_kernel(
    agents: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any] | None = None, *, plugins: list[Any] | None = None,
) -> Kernel:
    """A kernel with scripted, auth and discovery (and ``plugins``), ``plugins.discovery`` = ``settings``."""
    config = {
        "server": {"metrics_port": None},
        "agents": {name: dict(spec) for name, spec in agents.items()},
        "plugins": {"discovery": dict(settings or {})},
    }
    return Kernel(config, plugins=[scripted, auth, discovery, *(plugins or [])], discover=False)


def registry_agent() -> dict[str, Any]:
    """The agent registrations go through: auth with the test keys, the discovery skill."""
    return {"model": "scripted/echo", "description": "The registry's door", "skills": {"auth": REGISTRY_AUTH, "discovery": None}}


#: Words a toy embedding knows, by dimension: synonyms share a dimension, so vectors find
#: "rain" in an agent about "forecasts" where BM25 finds no common word.
CONCEPTS = [
    {"weather", "forecast", "forecasts", "rain", "umbrella", "sunny", "temperature"},
    {"invoice", "invoices", "pay", "payments", "refund", "refunds", "money", "bill"},
    {"translate", "translates", "languages", "french", "spanish", "german"},
]


def toy_vector(text: str) -> list[float]:
    """One dimension per concept: how many of its words ``text`` has."""
    tokens = [t.strip(".,!?").lower() for t in text.split()]
    return [float(sum(t in concept for t in tokens)) for concept in CONCEPTS]


class ToyEmbedder:
    """A ``robutler_embed`` plugin: :func:`toy_vector` for each text; it records calls
    and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = False

    @hookimpl
    def robutler_embed(self, texts: list[str], model: str | None) -> list[list[float]] | None:
        """Embed ``texts`` (or raise when told to fail)."""
        self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("embedding service down")
        return [toy_vector(t) for t in texts]


def tool_result(response: Any) -> Any:
    """The JSON a scripted ``call <tool>`` turn returned (``Tool x returned: {...}``)."""
    content = response.json()["choices"][0]["message"]["content"]
    prefix, _, payload = content.partition(" returned: ")
    assert prefix.startswith("Tool "), content
    return json.loads(payload)

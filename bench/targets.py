"""What the benchmark measures.

A :class:`Target` is a server the load generator hits: a name, how to start it (``kind``,
and for Robutler a config builder), and the request it gets (path and body per scenario).
Adding a target (another provider plugin, a memory backend, auth + payments) is one more
entry in :data:`TARGETS`, usually a Robutler config builder; see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ruamel.yaml import YAML

#: Scenarios: the name and whether the request streams.
SCENARIOS: dict[str, bool] = {"json": False, "stream": True}

#: The user message of every request (10 words: the fake upstream echoes it, one SSE
#: chunk per word when streaming).
PROMPT = "Benchmark request: please echo these ten words back, thanks."

AGENT = "bench"

ConfigBuilder = Callable[[str], dict[str, Any]]


def chat_body(model: str, scenario: str) -> dict[str, Any]:
    """The chat completion request body of ``scenario`` (``json`` or ``stream``)."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if SCENARIOS[scenario]:
        body["stream"] = True
    return body


@dataclass(frozen=True)
class Target:
    """One server under load.

    :ivar name: the row label (``--targets``).
    :ivar kind: how it is started: ``robutler`` (``robutler-kernel serve`` on the YAML that
        ``config`` builds), ``passthrough`` (:mod:`bench.passthrough`) or ``upstream`` (the
        fake upstream itself: no extra process).
    :ivar description: one line for the report.
    :ivar model: the request's ``model`` (the agent's name for Robutler).
    :ivar config: upstream ``base_url`` -> the ``agents``/``plugins`` part of the config
        (the harness adds ``server``); Robutler targets only.
    :ivar path: the request path.
    :ivar baseline: the target this one's throughput and latency are compared with.
    :ivar reference: a sanity row (run once per cell, never compared).
    :ivar needs: modules that must be importable (the plugins the config uses).
    :ivar uses_upstream: whether the fake upstream must run for this target.
    :ivar src: another checkout of this repository whose package sources the server runs
        on (``--baseline-src``: the same target at an earlier revision, in the same run).
    :ivar workers: ``serve --workers``: worker processes of a Robutler target (above 1, the
        server may use every core, and its CPU is its workers').
    :ivar args: more command-line arguments of the server (a pass-through's ``--client``).
    """

    name: str
    kind: str
    description: str
    model: str = AGENT
    config: ConfigBuilder | None = None
    path: str = "/v1/chat/completions"
    baseline: str | None = None
    reference: bool = False
    needs: tuple[str, ...] = ()
    uses_upstream: bool = True
    body: Callable[[str, str], dict[str, Any]] = field(default=chat_body)
    src: str | None = None
    workers: int = 1
    args: tuple[str, ...] = ()

    def request_body(self, scenario: str) -> dict[str, Any]:
        """The body sent in ``scenario``."""
        return self.body(self.model, scenario)

    def missing(self) -> list[str]:
        """The modules in :attr:`needs` that are not installed."""
        return [m for m in self.needs if importlib.util.find_spec(m) is None]


def openai_agent(upstream: str) -> dict[str, Any]:
    """One agent on the OpenAI plugin, pointed at the fake upstream, configured as the
    README writes it (the plugin's defaults: the direct transport)."""
    return {
        "agents": {
            AGENT: {
                "model": "openai/fake-model",
                "skills": {"openai": {"base_url": upstream, "api_key": "x"}},
            }
        }
    }


def openai_direct_agent(upstream: str) -> dict[str, Any]:
    """The same agent with ``transport: direct`` written out: the same path as the default
    now, and an explicit one for a comparison with revisions whose default was the SDK."""
    config = openai_agent(upstream)
    config["agents"][AGENT]["skills"]["openai"]["transport"] = "direct"
    return config


def openai_sdk_agent(upstream: str) -> dict[str, Any]:
    """The same agent with the openai plugin's ``sdk`` transport (chat calls through the
    official SDK's ``AsyncOpenAI``)."""
    config = openai_agent(upstream)
    config["agents"][AGENT]["skills"]["openai"]["transport"] = "sdk"
    return config


def scripted_agent(upstream: str) -> dict[str, Any]:
    """One agent on the offline scripted model (no upstream I/O: the kernel alone)."""
    return {"agents": {AGENT: {"model": "scripted/echo"}}}


def server_config(
    target: Target, upstream: str, *, port: int, metrics_port: int | None, host: str = "127.0.0.1"
) -> dict[str, Any]:
    """The whole Robutler config of ``target``: its builder's output plus ``server``."""
    assert target.config is not None, f"{target.name} has no Robutler config"
    config = dict(target.config(upstream))
    config["server"] = {"host": host, "port": port, "metrics_port": metrics_port, **config.get("server", {})}
    return config


def to_yaml(config: dict[str, Any]) -> str:
    """``config`` as YAML text."""
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(config, out)
    return out.getvalue()


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "robutler",
            "robutler",
            "robutler-kernel serve, one agent on openai/fake-model as the README configures it (the openai plugin's defaults)",
            config=openai_agent,
            baseline="passthrough",
            needs=("robutler_plugin_openai",),
        ),
        Target(
            "robutler-direct",
            "robutler",
            "robutler-kernel serve, the same agent with transport: direct written out (for --baseline-src runs)",
            config=openai_direct_agent,
            baseline="passthrough",
            needs=("robutler_plugin_openai",),
        ),
        Target(
            "robutler-sdk",
            "robutler",
            "robutler-kernel serve, the same agent with the openai plugin's sdk transport (AsyncOpenAI per call)",
            config=openai_sdk_agent,
            baseline="passthrough",
            needs=("robutler_plugin_openai",),
        ),
        Target(
            "robutler-2w",
            "robutler",
            "the robutler server with serve --workers 2 (compared with robutler: how it scales)",
            config=openai_agent,
            baseline="robutler",
            needs=("robutler_plugin_openai",),
            workers=2,
        ),
        Target(
            "robutler-scripted",
            "robutler",
            "robutler-kernel serve, one agent on scripted/echo (no upstream: kernel cost only)",
            config=scripted_agent,
            baseline="passthrough",
            needs=("robutler_plugin_scripted",),
            uses_upstream=False,
        ),
        Target(
            "passthrough",
            "passthrough",
            "bare Starlette-on-Hypercorn proxy, one shared aiohttp ClientSession (bench/passthrough.py)",
            model="fake-model",
        ),
        Target(
            "passthrough-lean",
            "passthrough",
            "the same pass-through on the contract's HTTP client (robutler_specs.httpclient) instead of aiohttp: "
            "the floor of a Python proxy with the client Robutler's default transport uses",
            model="fake-model",
            baseline="passthrough",
            args=("--client", "lean"),
        ),
        Target(
            "direct",
            "upstream",
            "the fake upstream itself, no proxy (sanity row: the harness's ceiling)",
            model="fake-model",
            reference=True,
        ),
    ]
}

DEFAULT_TARGETS = ("robutler", "robutler-sdk", "passthrough", "direct")


def select(names: list[str]) -> list[Target]:
    """The targets named, plus the baselines they are compared with, in a stable order."""
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    wanted = list(dict.fromkeys(names))
    for name in list(wanted):
        baseline = TARGETS[name].baseline
        if baseline and baseline not in wanted:
            wanted.append(baseline)
    baselines = {TARGETS[n].baseline for n in wanted}
    # compared targets first, then their baselines, then the reference rows
    return sorted((TARGETS[n] for n in wanted), key=lambda t: (t.reference, t.name in baselines))


def at_revision(targets: list[Target], src: str) -> list[Target]:
    """``targets`` with, after each Robutler one, the same target run on the sources of the
    checkout ``src`` (named ``<name>@base``), compared with the same baseline."""
    out: list[Target] = []
    for target in targets:
        out.append(target)
        if target.kind == "robutler":
            out.append(replace(target, name=f"{target.name}@base", src=src,
                               description=f"{target.description}, on the sources of {src}"))
    return out

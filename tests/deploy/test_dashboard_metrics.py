"""Every query of the Grafana dashboard names a metric the kernel really exports.

A kernel serves a little of everything in-process (answers, a stream, a tool call, an
upstream error, the health checks), then each metric name the dashboard's PromQL selects
must have samples in the process's Prometheus registry: a renamed or never-set metric
fails here, not on an operator's empty panel. Also: requests to ``/v1/completions`` and
``GET /{agent}`` are counted under their agent.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_specs import tool

from .test_deploy_files import dashboard_exprs, promql_metric_names


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def exported() -> dict[str, float]:
    """Every sample name in the registry, with the sum of its values."""
    found: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def count(name: str, **labels: str) -> float:
    return sum(s.value for f in REGISTRY.collect() for s in f.samples
               if s.name == name and labels.items() <= s.labels.items())


async def test_every_dashboard_metric_is_exported_after_traffic() -> None:
    agents: dict[str, Any] = {
        "calc": {"model": "scripted/echo", "tools": ["tests.deploy.test_dashboard_metrics:add"]},
        "flaky": {"model": "scripted/broken", "retry": {"attempts": 1},
                  "skills": {"scripted": {"scripts": {"broken": [{"error": "upstream exploded"}]}}}},
    }
    kernel = make_kernel(agents, plugins=[scripted])
    before_info = count("robutler_requests_total", agent="calc", method="GET")
    before_legacy = count("robutler_requests_total", agent="calc", method="POST")
    async with kernel_client(kernel) as client:
        r = await client.post("/calc/chat/completions", json={"messages": [{"role": "user", "content": "call add a=2 b=3"}]})
        assert r.status_code == 200 and "5" in r.json()["choices"][0]["message"]["content"]
        r = await client.post("/calc/chat/completions",
                              json={"messages": [{"role": "user", "content": "one two"}], "stream": True})
        assert r.status_code == 200
        assert (await client.post("/flaky/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})).status_code == 502
        assert (await client.get("/calc")).status_code == 200
        assert (await client.post("/v1/completions", json={"model": "calc", "prompt": "hi"})).status_code == 200
        assert (await client.get("/ready")).status_code == 200
        assert (await client.get("/health/detailed")).status_code == 200
    assert count("robutler_requests_total", agent="calc", method="GET") == before_info + 1
    assert count("robutler_requests_total", agent="calc", method="POST") == before_legacy + 3
    assert count("robutler_tool_calls_total", agent="calc", tool="add", outcome="ok") >= 1
    assert count("robutler_upstream_errors_total", provider="scripted", status="502") >= 1
    assert count("robutler_agent_health", agent="calc") == 1 and count("robutler_agent_health", agent="flaky") == 1

    samples = exported()
    for expr in dashboard_exprs():
        for name in promql_metric_names(expr):
            assert name in samples or name + "_total" in samples, f"the dashboard queries {name}, which has no samples: {expr}"

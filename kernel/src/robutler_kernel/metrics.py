"""Prometheus metrics (names from the Robutler V2 design), served on their own port.

The metrics live in the process-wide default registry: one kernel per process is the
deployment model (scale out with replicas), and tests that build many kernels share them.

With ``serve --workers N`` each worker process counts in its own files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, chosen when the
library is imported) and the supervisor serves their aggregate (:mod:`.workers`): counters
and histograms are summed over every worker that ever ran, and each gauge says how its
workers' values combine (``multiprocess_mode``, ignored in a single process).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from robutler_specs import RequestContext

REQUEST_COUNT = Counter("robutler_requests_total", "Total requests", ["agent", "method", "status"])
REQUEST_DURATION = Histogram(
    "robutler_request_duration_seconds",
    "Request duration",
    ["agent"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
# Connections open now on all live workers.
ACTIVE_CONNECTIONS = Gauge("robutler_active_connections", "Active connections", multiprocess_mode="livesum")
SKILL_USAGE = Counter("robutler_skill_usage_total", "Skill usage", ["skill", "agent"])
TOKEN_USAGE = Counter("robutler_tokens_total", "Token usage", ["agent", "type"])
LLM_CALLS = Counter(
    "robutler_llm_calls_total", "LLM call tries (retries and fallbacks included)", ["agent", "model", "outcome"]
)
# Healthy only when healthy on every live worker.
AGENT_HEALTH = Gauge("robutler_agent_health", "Agent health status", ["agent"], multiprocess_mode="livemin")
# Each worker loads dynamic agents on its own first request for them: the most any live
# worker holds is the closest to "how many are active" (a sum would count one agent N times).
DYNAMIC_AGENTS = Gauge("robutler_dynamic_agents_active", "Active dynamic agents", multiprocess_mode="livemax")

# Per try of an LLM call, by the provider skill that served it and the model it asked for
# (models come from agents' configs: bounded). Latency is of tries that answered; a try
# that failed is an upstream error instead, by the HTTP status it became.
_LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
LLM_LATENCY = Histogram(
    "robutler_llm_latency_seconds", "Duration of an LLM call try that answered, to its last token",
    ["provider", "model"], buckets=_LLM_BUCKETS,
)
LLM_FIRST_TOKEN = Histogram(
    "robutler_llm_time_to_first_token_seconds", "Streamed LLM call tries: time to the first text token",
    ["provider", "model"], buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
UPSTREAM_ERRORS = Counter(
    "robutler_upstream_errors_total", "LLM call tries that failed, by provider and the status they became",
    ["provider", "status"],
)
# Tools the kernel ran for an agent (the agent's own: client tools are the client's), by
# outcome: ok, error (the model saw an error result) or unknown (a name the agent lacks).
TOOL_CALLS = Counter("robutler_tool_calls_total", "Tool calls run", ["agent", "tool", "outcome"])
TOOL_DURATION = Histogram(
    "robutler_tool_duration_seconds", "Tool call duration, hooks included", ["agent", "tool"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


_children: dict[tuple[Any, ...], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, cached: the label lookup costs more than the increment."""
    key = (metric, *labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def observe_request(ctx: RequestContext, error: BaseException | None) -> None:
    """Record the tokens and skill usage of a finished request."""
    agent = ctx.agent.name
    prompt = completion = cache_read = cache_write = 0
    for record in ctx.usage:
        if record.kind == "llm":
            prompt += record.prompt_tokens
            completion += record.completion_tokens
            cache_read += record.cache_read_tokens
            cache_write += record.cache_write_tokens
            # Models come from the agent's config (its list and allowed_models): bounded.
            child(LLM_CALLS, agent, record.name, "ok" if record.ok else "failed").inc()
        if record.plugin:
            child(SKILL_USAGE, record.plugin, agent).inc()
    if prompt:
        child(TOKEN_USAGE, agent, "prompt").inc(prompt)
    if completion:
        child(TOKEN_USAGE, agent, "completion").inc(completion)
    if cache_read:
        child(TOKEN_USAGE, agent, "cache_read").inc(cache_read)
    if cache_write:
        child(TOKEN_USAGE, agent, "cache_write").inc(cache_write)


class MetricsMiddleware:
    """Pure ASGI middleware: request count, duration and active connections.

    The agent label comes from ``scope["robutler.agent"]``, which the endpoints set once
    they have resolved a known agent (so unknown names cannot blow up label cardinality).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        ACTIVE_CONNECTIONS.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            ACTIVE_CONNECTIONS.dec()
            agent = scope.get("robutler.agent", "-")
            child(REQUEST_COUNT, agent, scope["method"], str(status)).inc()
            child(REQUEST_DURATION, agent).observe(time.perf_counter() - started)

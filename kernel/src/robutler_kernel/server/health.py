"""Health endpoints: ``/`` and ``/health`` (basic), ``/health/detailed``, ``/ready``, ``/live``.

Every check (each plugin's, each skill's, and the host's disk and memory) is *required*
unless marked informative (:mod:`robutler_specs.health`): a failing required check makes
``/ready`` and ``/health/detailed`` answer 503 (``unhealthy``); a failing informative one
(an LLM provider by default, the host checks unless ``server.health.host_required``) is
reported as ``degraded`` with 200, so one provider's outage never takes every replica out of
the load balancer. ``robutler_agent_health`` is 1 for an agent whose skills' checks all pass
and which has a model whose circuit is closed, else 0; a served kernel refreshes it every
``server.health.interval`` seconds (:func:`monitor`), and every check run sets it too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import psutil
from starlette.requests import Request
from starlette.responses import Response

from robutler_specs.health import is_required, required

from ..metrics import AGENT_HEALTH, child
from .routes import json_response

if TYPE_CHECKING:
    from ..config import HealthSettings
    from ..kernel import Kernel

log = logging.getLogger("robutler.health")

CHECK_TIMEOUT = 5.0
_STARTED_AT = time.time()


def host_checks(settings: HealthSettings) -> dict[str, Callable[[], Awaitable[Any]]]:
    """``host:disk`` and ``host:memory``: use of ``disk_path``'s file system and of the
    host's memory against their thresholds (informative unless ``host_required``)."""

    async def disk() -> dict[str, Any]:
        usage = psutil.disk_usage(settings.disk_path)
        detail = {"path": os.path.abspath(settings.disk_path), "percent": usage.percent,
                  "free_bytes": usage.free, "max_percent": settings.disk_max_percent}
        if usage.percent > settings.disk_max_percent:
            raise RuntimeError(f"disk {detail['path']} is {usage.percent:g}% full (above "
                               f"server.health.disk_max_percent {settings.disk_max_percent:g}); "
                               f"{usage.free} bytes free")
        return detail

    async def memory() -> dict[str, Any]:
        mem = psutil.virtual_memory()
        detail = {"percent": mem.percent, "available_bytes": mem.available, "max_percent": settings.memory_max_percent}
        if mem.percent > settings.memory_max_percent:
            raise RuntimeError(f"host memory is {mem.percent:g}% used (above server.health.memory_max_percent "
                               f"{settings.memory_max_percent:g}); {mem.available} bytes available")
        return detail

    return {
        "host:disk": required(disk, settings.host_required),
        "host:memory": required(memory, settings.host_required),
    }


async def run_checks(kernel: Kernel, timeout: float | None = None) -> dict[str, dict[str, Any]]:
    """Run every check concurrently, each within ``timeout`` seconds (default
    ``server.health.timeout``); set ``robutler_agent_health`` from the outcomes.

    Each result has ``status`` (``healthy`` / ``unhealthy``), ``required: false`` when
    informative, and either ``latency_ms`` and ``detail`` or ``error``. The host's checks
    are apart (:func:`run_host_checks`)."""
    settings = kernel.config.server.health
    timeout = settings.timeout if timeout is None else timeout
    checks: dict[str, Any] = {}
    for plugin_checks in await kernel.hooks.robutler_health_checks():
        checks.update(plugin_checks)
    by_agent: dict[str, list[str]] = {}
    for name in kernel.agent_names:
        agent = kernel.agent(name)
        own = by_agent.setdefault(name, [])
        for skill in agent.skills if agent else ():
            found = skill.health_checks()
            checks.update(found)
            own.extend(found)

    results = await _run_all(checks, timeout)
    for name, names in by_agent.items():
        ok = all(results[n]["status"] == "healthy" for n in names) and _has_closed_model(kernel, name)
        child(AGENT_HEALTH, name).set(1.0 if ok and kernel.started else 0.0)
    return results


async def _run_all(checks: dict[str, Any], timeout: float) -> dict[str, dict[str, Any]]:
    """Run ``checks`` concurrently, each within ``timeout`` seconds. A required check's
    result is ``{status, latency_ms, detail}`` or ``{status, error}``; an informative one's
    also says ``required: false``."""

    async def run(fn: Any) -> dict[str, Any]:
        started = time.perf_counter()
        extra = {} if is_required(fn) else {"required": False}
        try:
            async with asyncio.timeout(timeout):
                detail = await fn()
        except TimeoutError:
            return {"status": "unhealthy", **extra, "error": f"timed out after {timeout:g} s"}
        except Exception as exc:
            return {"status": "unhealthy", **extra, "error": f"{type(exc).__name__}: {exc}"}
        result: dict[str, Any] = {"status": "healthy", **extra,
                                  "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        if detail is not None:
            result["detail"] = detail
        return result

    return dict(zip(checks, await asyncio.gather(*(run(fn) for fn in checks.values())), strict=True))


async def run_host_checks(kernel: Kernel) -> dict[str, dict[str, Any]]:
    """``host:disk`` and ``host:memory`` (see :func:`host_checks`), as :func:`run_checks` reports."""
    settings = kernel.config.server.health
    return await _run_all(host_checks(settings), settings.timeout)


def _has_closed_model(kernel: Kernel, name: str) -> bool:
    """Whether some model of agent ``name`` is not behind an open circuit."""
    agent = kernel.agent(name)
    if agent is None:  # pragma: no cover - names come from the kernel itself
        return False
    models = agent.spec.model if isinstance(agent.spec.model, list) else [agent.spec.model]
    open_now = agent.llm.breaker.open_models()
    return any(m not in open_now for m in models)


def verdict(kernel: Kernel, checks: dict[str, dict[str, Any]]) -> str:
    """``unhealthy`` (not serving, or a required check fails), ``degraded`` (only
    informative checks fail) or ``healthy``."""
    if not kernel.started or kernel.stopping:
        return "unhealthy"
    failing = [c for c in checks.values() if c["status"] != "healthy"]
    if any(c.get("required", True) for c in failing):
        return "unhealthy"
    return "degraded" if failing else "healthy"


async def monitor(kernel: Kernel) -> None:
    """Run every check each ``server.health.interval`` seconds while the kernel serves
    (``robutler_agent_health`` stays current without a probe asking), logging changes."""
    interval = kernel.config.server.health.interval
    if not interval:
        return
    last: dict[str, str] = {}
    while True:
        # The first round after one interval: a probe (Kubernetes' readinessProbe) or a
        # look at /health/detailed sets the gauge before then, and a server that lives a
        # few seconds (a test) sends its providers nothing it was not asked for.
        await asyncio.sleep(interval)
        if kernel.started and not kernel.stopping:
            try:
                results = await asyncio.gather(run_checks(kernel), run_host_checks(kernel))
                checks = {**results[0], **results[1]}
            except Exception:  # a broken hook: logged, the next round tries again
                log.exception("health checks failed to run")
            else:
                for name, result in checks.items():
                    if last.get(name, "healthy") != result["status"]:
                        level = logging.WARNING if result["status"] != "healthy" else logging.INFO
                        log.log(level, "health check %s is %s%s", name, result["status"],
                                f": {result['error']}" if "error" in result else "")
                    last[name] = result["status"]


def _state(kernel: Kernel) -> str:
    if kernel.stopping:
        return "stopping"
    return "healthy" if kernel.started else "starting"


def _agent_health(kernel: Kernel, name: str) -> dict[str, Any]:
    agent = kernel.agent(name)
    if agent is None:  # pragma: no cover - names come from the kernel itself
        return {}
    return {"skills": [s.name for s in agent.skills], "open_models": agent.llm.breaker.open_models()}


def make_health_routes(kernel: Kernel) -> dict[str, Any]:
    """The health handlers, closed over ``kernel``."""

    async def basic(request: Request) -> Response:
        state = _state(kernel)
        body = {
            "status": state,
            "version": _version(),
            "agents": kernel.agent_names,
            "uptime_seconds": round(time.time() - _STARTED_AT, 1),
        }
        return json_response(body, 200 if state == "healthy" else 503)

    async def detailed(request: Request) -> Response:
        checks, host = await asyncio.gather(run_checks(kernel), run_host_checks(kernel))
        process = psutil.Process(os.getpid())
        with process.oneshot():
            system = {
                "pid": process.pid,
                "cpu_percent": process.cpu_percent(interval=None),
                "memory_rss_bytes": process.memory_info().rss,
                "threads": process.num_threads(),
                "open_files": len(process.open_files()),
            }
        status = verdict(kernel, {**checks, **host})
        body = {
            "status": status,
            "version": _version(),
            "uptime_seconds": round(time.time() - _STARTED_AT, 1),
            # Open circuits (models tried last for now) inform; they do not make the server
            # unhealthy: the agent's other models still answer.
            "agents": {name: _agent_health(kernel, name) for name in kernel.agent_names},
            "plugins": {n: {"version": p.version, "skills": [s.name for s in p.skills]} for n, p in kernel.registry.plugins.items()},
            "checks": checks,
            "host": host,
            "system": system,
        }
        return json_response(body, 503 if status == "unhealthy" else 200)

    async def ready(request: Request) -> Response:
        if not kernel.started or kernel.stopping:
            return json_response({"status": _state(kernel)}, 503)
        results = await asyncio.gather(run_checks(kernel), run_host_checks(kernel))
        checks = {**results[0], **results[1]}
        failing = sorted(n for n, c in checks.items() if c["status"] != "healthy" and c.get("required", True))
        if failing:
            return json_response({"status": "not ready", "failing": failing}, 503)
        degraded = sorted(n for n, c in checks.items() if c["status"] != "healthy")
        if degraded:
            return json_response({"status": "ready", "degraded": degraded})
        return json_response({"status": "ready"})

    async def live(request: Request) -> Response:
        return json_response({"status": "alive"})

    return {"basic": basic, "detailed": detailed, "ready": ready, "live": live}


def _version() -> str:
    from .. import __version__

    return __version__

"""Health endpoints: ``/`` and ``/health`` (basic), ``/health/detailed``, ``/ready``, ``/live``."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

import psutil
from starlette.requests import Request
from starlette.responses import Response

from .routes import json_response

if TYPE_CHECKING:
    from ..kernel import Kernel

CHECK_TIMEOUT = 5.0
_STARTED_AT = time.time()


async def run_checks(kernel: Kernel, timeout: float = CHECK_TIMEOUT) -> dict[str, dict[str, Any]]:
    """Run every plugin's health checks concurrently, each with ``timeout`` seconds."""
    checks: dict[str, Any] = {}
    for plugin_checks in await kernel.hooks.robutler_health_checks():
        checks.update(plugin_checks)
    for name in kernel.agent_names:
        agent = kernel.agent(name)
        for skill in agent.skills if agent else ():
            checks.update(skill.health_checks())

    async def run(fn: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                detail = await fn()
        except TimeoutError:
            return {"status": "unhealthy", "error": f"timed out after {timeout:g} s"}
        except Exception as exc:
            return {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
        result: dict[str, Any] = {"status": "healthy", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        if detail is not None:
            result["detail"] = detail
        return result

    results = await asyncio.gather(*(run(fn) for fn in checks.values()))
    return dict(zip(checks, results, strict=True))


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
        checks = await run_checks(kernel)
        process = psutil.Process(os.getpid())
        with process.oneshot():
            system = {
                "pid": process.pid,
                "cpu_percent": process.cpu_percent(interval=None),
                "memory_rss_bytes": process.memory_info().rss,
                "threads": process.num_threads(),
                "open_files": len(process.open_files()),
            }
        healthy = kernel.started and not kernel.stopping and all(c["status"] == "healthy" for c in checks.values())
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "version": _version(),
            "uptime_seconds": round(time.time() - _STARTED_AT, 1),
            # Open circuits (models tried last for now) inform; they do not make the server
            # unhealthy: the agent's other models still answer.
            "agents": {name: _agent_health(kernel, name) for name in kernel.agent_names},
            "plugins": {n: {"version": p.version, "skills": [s.name for s in p.skills]} for n, p in kernel.registry.plugins.items()},
            "checks": checks,
            "system": system,
        }
        return json_response(body, 200 if healthy else 503)

    async def ready(request: Request) -> Response:
        if not kernel.started or kernel.stopping:
            return json_response({"status": _state(kernel)}, 503)
        checks = await run_checks(kernel)
        failing = sorted(n for n, c in checks.items() if c["status"] != "healthy")
        if failing:
            return json_response({"status": "not ready", "failing": failing}, 503)
        return json_response({"status": "ready"})

    async def live(request: Request) -> Response:
        return json_response({"status": "alive"})

    return {"basic": basic, "detailed": detailed, "ready": ready, "live": live}


def _version() -> str:
    from .. import __version__

    return __version__

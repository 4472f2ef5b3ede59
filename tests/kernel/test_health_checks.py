"""Required and informative health checks, the host checks, and cached checks."""

from __future__ import annotations

import asyncio
from typing import Any

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_specs import Skill
from robutler_specs.health import CachedCheck, informative


class Provider(Skill):
    """A skill with one informative check (a provider) and one required one (its database)."""

    name = "flaky_backends"
    down: set[str] = set()

    def health_checks(self) -> dict[str, Any]:
        async def upstream() -> str:
            if "upstream" in self.down:
                raise ConnectionError("upstream is down")
            return "ok"

        async def database() -> str:
            if "database" in self.down:
                raise ConnectionError("database is down")
            return "ok"

        return {"flaky:upstream": informative(upstream), "flaky:database": database}


def kernel(**server: Any) -> Any:
    return make_kernel({"bot": {"model": "scripted/echo", "skills": {"flaky_backends": None}}},
                       plugins=[scripted, Provider], server={"metrics_port": None, **server})


async def test_an_informative_check_degrades_but_keeps_the_server_ready() -> None:
    Provider.down = {"upstream"}
    async with kernel_client(kernel()) as client:
        ready = await client.get("/ready")
        detailed = await client.get("/health/detailed")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "degraded": ["flaky:upstream"]}
    assert detailed.status_code == 200 and detailed.json()["status"] == "degraded"
    check = detailed.json()["checks"]["flaky:upstream"]
    assert check == {"status": "unhealthy", "required": False, "error": "ConnectionError: upstream is down"}


async def test_a_required_check_down_makes_the_server_not_ready() -> None:
    Provider.down = {"database"}
    async with kernel_client(kernel()) as client:
        ready = await client.get("/ready")
        detailed = await client.get("/health/detailed")
        Provider.down = set()
        again = await client.get("/ready")
    assert ready.status_code == 503 and ready.json()["failing"] == ["flaky:database"]
    assert detailed.status_code == 503 and detailed.json()["status"] == "unhealthy"
    assert again.status_code == 200 and again.json() == {"status": "ready"}


async def test_host_checks_have_thresholds_and_may_be_required() -> None:
    Provider.down = set()
    settings = {"disk_max_percent": 0.001, "memory_max_percent": 100}
    async with kernel_client(kernel(health=settings)) as client:
        detailed = (await client.get("/health/detailed")).json()
    assert detailed["status"] == "degraded"
    disk = detailed["host"]["host:disk"]
    assert disk["status"] == "unhealthy" and "server.health.disk_max_percent" in disk["error"]
    assert detailed["host"]["host:memory"]["status"] == "healthy"
    assert {"percent", "available_bytes", "max_percent"} <= set(detailed["host"]["host:memory"]["detail"])
    async with kernel_client(kernel(health={**settings, "host_required": True})) as client:
        ready = await client.get("/ready")
    assert ready.status_code == 503 and ready.json()["failing"] == ["host:disk"]


async def test_a_cached_check_runs_once_per_ttl() -> None:
    now = [0.0]
    runs = []

    async def probe() -> int:
        runs.append(now[0])
        await asyncio.sleep(0)
        if len(runs) == 2:
            raise RuntimeError("down")
        return len(runs)

    check = CachedCheck(probe, 60, required=False, clock=lambda: now[0])
    assert await asyncio.gather(check(), check()) == [1, 1]  # concurrent callers share one run
    now[0] = 59
    assert await check() == 1 and len(runs) == 1
    now[0] = 61
    for _ in range(2):  # a failure is cached too
        try:
            await check()
        except RuntimeError as exc:
            assert str(exc) == "down"
    assert len(runs) == 2 and check.required is False

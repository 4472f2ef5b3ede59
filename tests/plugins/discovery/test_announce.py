"""Announcing: a kernel publishes its agents to a registry kernel at start-up, renews them
before the TTL runs out and removes them when it stops (two LiveServers, the registry's
clock moved by hand)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from robutler_kernel.testing import LiveServer

from .helpers import ALICE_KEY, FakeClock, catalogue_agents, discovery_kernel, registry_agent


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (or fail after ``timeout``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not true within {timeout} s: {check.__doc__ or check}")
        await asyncio.sleep(0.02)


def registry_on(path: Path) -> Any:
    return discovery_kernel({"registry": registry_agent()}, {"registry": {"path": str(path)}})


async def registered(http: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    data = (await http.get("/agents", params={"top_k": 50})).json()["data"]
    return {a["name"]: a for a in data if a["source"] == "registry"}


async def test_announce_renew_and_deregister_at_shutdown(tmp_path: Path) -> None:
    clock = FakeClock()
    with LiveServer(registry_on(tmp_path / "registry.db")) as registry:
        registry.kernel.state["discovery"].registry.clock = clock
        announcer = discovery_kernel(
            catalogue_agents(),
            {"public_url": "https://team.example.com", "registry_url": registry.url,
             "announce": {"api_key": ALICE_KEY, "ttl": 30, "interval": 0.05, "agents": ["weather", "billing"]}},
        )
        async with httpx.AsyncClient(base_url=registry.url) as http:
            with LiveServer(announcer):
                await eventually(lambda: _both(http))
                listed = await registered(http)
                assert listed["weather"]["url"] == "https://team.example.com/weather"
                assert listed["weather"]["intents"] == ["weather forecast", "temperature"]
                assert "translator" not in listed
                found = (await http.get("/agents", params={"search": "refund"})).json()["data"]
                assert [a["url"] for a in found] == ["https://team.example.com/billing"]
                for _ in range(3):  # 75 s pass on a 30 s TTL: renewals keep them listed
                    clock.advance(25)
                    await eventually(lambda: _renewed(http))
                assert set(await registered(http)) == {"weather", "billing"}
            # The announcer stopped: it removed its registrations.
            assert await registered(http) == {}


async def _both(http: httpx.AsyncClient) -> bool:
    """Both announced agents are registered."""
    return set(await registered(http)) == {"weather", "billing"}


async def _renewed(http: httpx.AsyncClient) -> bool:
    """Both registrations were renewed since the clock moved."""
    listed = await registered(http)
    return len(listed) == 2 and all(a["expires_in"] > 25 for a in listed.values())


async def test_without_deregister_registrations_lapse_after_the_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    with LiveServer(registry_on(tmp_path / "registry.db")) as registry:
        registry.kernel.state["discovery"].registry.clock = clock
        announcer = discovery_kernel(
            catalogue_agents(),
            {"public_url": "https://team.example.com", "registry_url": registry.url,
             "announce": {"api_key": ALICE_KEY, "ttl": 30, "interval": 10, "deregister": False}},
        )
        async with httpx.AsyncClient(base_url=registry.url) as http:
            with LiveServer(announcer):
                await eventually(lambda: _all_three(http))
            assert len(await registered(http)) == 3  # stopped renewing, not removed
            clock.advance(30)
            assert await registered(http) == {}


async def _all_three(http: httpx.AsyncClient) -> bool:
    """Every agent of the catalogue is registered."""
    return len(await registered(http)) == 3


async def test_a_refused_announcement_is_retried_and_reported(tmp_path: Path) -> None:
    with LiveServer(registry_on(tmp_path / "registry.db")) as registry:
        announcer = discovery_kernel(
            catalogue_agents(),
            {"public_url": "https://team.example.com", "registry_url": registry.url,
             "announce": {"api_key": "wrong-key-0123456789abcdefghijkl", "ttl": 30, "retry_interval": 0.05}},
        )
        with LiveServer(announcer):
            state = announcer.state["discovery"].announcer

            async def refused() -> bool:
                """Two rounds failed with 401 (so it retried) and none succeeded."""
                return state.failures >= 2 and "401" in (state.last_error or "") and state.rounds == 0

            await eventually(refused)

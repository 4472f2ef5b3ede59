"""The registry over HTTP: POST /{agent}/agents/register and DELETE .../{name} act for the
registry agent, whose auth skill identifies the caller; GET /agents lists registrations."""

from __future__ import annotations

from typing import Any

from robutler_kernel.testing import kernel_client

from .helpers import (
    ALICE_KEY,
    BOB_KEY,
    ROOT_KEY,
    FakeClock,
    bearer,
    catalogue_agents,
    discovery_kernel,
    registry_agent,
)

REGISTER = "/registry/agents/register"


def registration(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": f"https://remote.example.com/{name}", "description": "Plans trips",
            "intents": ["book a flight", "hotel"], "ttl": 60, **extra}


def registry_kernel(backend: dict[str, Any], **settings: Any) -> Any:
    agents = catalogue_agents(registry=registry_agent(), plain={"model": "scripted/echo"})
    return discovery_kernel(agents, {"registry": backend, "public_url": "https://me.example.com", **settings})


async def test_register_search_expire_and_delete(registry_backend: dict[str, Any]) -> None:
    kernel = registry_kernel(registry_backend)
    clock = FakeClock()
    async with kernel_client(kernel) as client:
        kernel.state["discovery"].registry.clock = clock
        created = await client.post(REGISTER, json=registration("travel"), headers=bearer(ALICE_KEY))
        assert created.status_code == 200, created.text
        assert created.json()["owner"] == "alice" and created.json()["expires_in"] == 60
        found = (await client.get("/agents", params={"search": "book a flight"})).json()["data"]
        assert [(a["name"], a["url"], a["source"]) for a in found] == [
            ("travel", "https://remote.example.com/travel", "registry")
        ]
        clock.advance(61)
        assert (await client.get("/agents", params={"search": "flight"})).json()["data"] == []
        await client.post(REGISTER, json=registration("travel"), headers=bearer(BOB_KEY))
        deleted = await client.delete(f"{REGISTER}/travel", headers=bearer(BOB_KEY))
        assert deleted.status_code == 200 and deleted.json() == {
            "object": "registration.deleted", "name": "travel", "deleted": True
        }
        missing = await client.delete(f"{REGISTER}/travel", headers=bearer(BOB_KEY))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "registration_not_found"


async def test_only_the_owner_or_an_admin_changes_a_registration(registry_backend: dict[str, Any]) -> None:
    kernel = registry_kernel(registry_backend)
    async with kernel_client(kernel) as client:
        assert (await client.post(REGISTER, json=registration("travel"), headers=bearer(ALICE_KEY))).status_code == 200
        hijack = await client.post(REGISTER, json=registration("travel", url="https://evil.example.com/x"),
                                   headers=bearer(BOB_KEY))
        assert hijack.status_code == 403 and hijack.json()["error"]["code"] == "registration_taken"
        assert (await client.delete(f"{REGISTER}/travel", headers=bearer(BOB_KEY))).status_code == 403
        anonymous = await client.post(REGISTER, json=registration("other"))
        assert anonymous.status_code == 401 and "credentials" in anonymous.json()["error"]["message"]
        wrong_key = await client.post(REGISTER, json=registration("other"), headers=bearer("x" * 40))
        assert wrong_key.status_code == 401
        assert (await client.delete(f"{REGISTER}/travel", headers=bearer(ROOT_KEY))).status_code == 200


async def test_refusals_are_openai_shaped(registry_backend: dict[str, Any]) -> None:
    kernel = registry_kernel(registry_backend)
    async with kernel_client(kernel) as client:
        bad = await client.post(REGISTER, json={"name": "x", "url": "nope"}, headers=bearer(ALICE_KEY))
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "url"
        too_long = await client.post(REGISTER, json=registration("x", ttl=10**9), headers=bearer(ALICE_KEY))
        assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "ttl"
        not_json = await client.post(REGISTER, content=b"{", headers=bearer(ALICE_KEY))
        assert not_json.status_code == 400
        no_skill = await client.post("/plain/agents/register", json=registration("x"), headers=bearer(ALICE_KEY))
        assert no_skill.status_code == 404 and "discovery skill" in no_skill.json()["error"]["message"]
        no_agent = await client.post("/nobody/agents/register", json=registration("x"))
        assert no_agent.status_code == 404


async def test_a_kernel_that_is_not_a_registry_says_so() -> None:
    kernel = discovery_kernel(catalogue_agents(registry=registry_agent()))
    async with kernel_client(kernel) as client:
        response = await client.post(REGISTER, json=registration("x"), headers=bearer(ALICE_KEY))
    assert response.status_code == 404 and response.json()["error"]["code"] == "registry_not_enabled"


async def test_a_registration_of_a_local_agent_is_listed_once(tmp_path: Any) -> None:
    kernel = registry_kernel({"path": str(tmp_path / "r.db")})
    async with kernel_client(kernel) as client:
        own = {"name": "weather", "url": "https://me.example.com/weather", "intents": ["weather forecast"]}
        assert (await client.post(REGISTER, json=own, headers=bearer(ALICE_KEY))).status_code == 200
        found = (await client.get("/agents", params={"search": "forecast"})).json()["data"]
        health = (await client.get("/health/detailed")).json()
    assert [(a["name"], a["source"]) for a in found] == [("weather", "local")]
    assert any(name.startswith("discovery:registry:sqlite") for name in health["checks"])

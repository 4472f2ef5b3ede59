"""The registry service on both backends: register, renew, expire, delete, ownership,
limits; and a hypothesis state machine against a model dict with an injectable clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from robutler_plugin_discovery import RegistryConfig
from robutler_plugin_discovery.registry import RegistrationRequest, Registry, make_backend
from robutler_plugin_discovery.registry.service import parse_registration
from robutler_specs import (
    BadRequest,
    Forbidden,
    Identity,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)

from .helpers import FakeClock

ALICE = Identity(user_id="alice")
BOB = Identity(user_id="bob")
ROOT = Identity(user_id="root", scopes=("admin",))


def request(name: str, ttl: float | None = 60, url: str | None = None, **extra: Any) -> RegistrationRequest:
    return RegistrationRequest(name=name, url=url or f"https://{name}.example.com/{name}", ttl=ttl, **extra)


async def open_registry(backend: dict[str, Any], clock: FakeClock, **config: Any) -> Registry:
    registry = Registry(make_backend(RegistryConfig(**backend, **config)), RegistryConfig(**backend, **config), clock)
    await registry.start()
    return registry


async def test_register_list_renew_and_expire(registry_backend: dict[str, Any]) -> None:
    clock = FakeClock()
    registry = await open_registry(registry_backend, clock)
    try:
        reg = await registry.register(request("weather", ttl=60, intents=["forecast"], description="Rain"), ALICE)
        assert (reg.owner, reg.expires_at, reg.intents) == ("alice", clock.now + 60, ("forecast",))
        clock.advance(50)
        await registry.register(request("weather", ttl=60), ALICE)  # renewed: 60 s from now
        clock.advance(50)
        assert [r.name for r in await registry.live()] == ["weather"]
        clock.advance(10)  # exactly at expiry: gone
        assert await registry.live() == []
    finally:
        await registry.stop()


async def test_ownership_admin_and_lapsed_names(registry_backend: dict[str, Any]) -> None:
    clock = FakeClock()
    registry = await open_registry(registry_backend, clock)
    try:
        await registry.register(request("weather"), ALICE)
        with pytest.raises(Forbidden, match="another identity"):
            await registry.register(request("weather", url="https://evil.example.com/weather"), BOB)
        with pytest.raises(Forbidden):
            await registry.deregister("weather", BOB)
        renewed = await registry.register(request("weather", url="https://fixed.example.com/weather"), ROOT)
        assert renewed.owner == "alice" and renewed.url == "https://fixed.example.com/weather"
        await registry.deregister("weather", ROOT)
        with pytest.raises(NotFound):
            await registry.deregister("weather", ALICE)
        await registry.register(request("weather", ttl=5), ALICE)
        clock.advance(5)
        taken = await registry.register(request("weather"), BOB)  # a lapsed name is free
        assert taken.owner == "bob"
        with pytest.raises(Unauthorized):
            await registry.register(request("other"), Identity())
    finally:
        await registry.stop()


async def test_limits(registry_backend: dict[str, Any]) -> None:
    clock = FakeClock()
    registry = await open_registry(registry_backend, clock, max_per_owner=2, default_ttl=50, max_ttl=100)
    try:
        await registry.register(request("a"), ALICE)
        await registry.register(request("b"), ALICE)
        with pytest.raises(RateLimited):
            await registry.register(request("c"), ALICE)
        await registry.register(request("a"), ALICE)  # renewing is not a new one
        with pytest.raises(BadRequest) as exc:
            await registry.register(request("d", ttl=101), BOB)
        assert exc.value.param == "ttl"
        default = await registry.register(request("e", ttl=None), BOB)
        assert default.expires_at == clock.now + 50  # default_ttl
    finally:
        await registry.stop()


def test_parse_registration_names_the_bad_field() -> None:
    with pytest.raises(BadRequest) as exc:
        parse_registration({"name": "ok", "url": "ftp://x"})
    assert exc.value.param == "url"
    with pytest.raises(BadRequest) as exc:
        parse_registration({"name": "no spaces", "url": "https://x"})
    assert exc.value.param == "name"
    with pytest.raises(BadRequest):
        parse_registration(["not", "an", "object"])
    assert parse_registration({"name": "ok", "url": "https://x/ok/"}).url == "https://x/ok"


async def test_an_unreachable_backend_is_a_503(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    config = RegistryConfig(path=str(tmp_path / "file" / "registry.db"))
    registry = Registry(make_backend(config), config)
    await registry.start()  # does not raise; requests get the 503
    with pytest.raises(ServiceUnavailable, match=r"plugins\.discovery\.registry\.path"):
        await registry.live()


def test_config_refuses_bad_values() -> None:
    for bad in ({"table": "x; drop"}, {"backend": "sqlite", "table": "s.t"}, {"default_ttl": 10, "max_ttl": 5}):
        with pytest.raises((msgspec.ValidationError, ValueError)):
            msgspec.convert(bad, RegistryConfig)


# -- the state machine ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c"])
WHO = st.sampled_from([ALICE, BOB, ROOT])


class RegistryMachine(RuleBasedStateMachine):
    """Registrations against a model: name -> (owner, expires_at)."""

    backend: dict[str, Any] = {}

    @initialize()
    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        config = RegistryConfig(**self.backend, max_per_owner=2)
        self.registry = Registry(make_backend(config), config, self.clock)
        self.run(self.registry.start())
        self.run(self.registry.backend.purge(now=float("inf")))
        self.model: dict[str, tuple[str, float]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def live_model(self) -> dict[str, tuple[str, float]]:
        return {n: v for n, v in self.model.items() if v[1] > self.clock.now}

    @rule(name=NAMES, who=WHO, ttl=st.integers(min_value=1, max_value=30))
    def register(self, name: str, who: Identity, ttl: int) -> None:
        live = self.live_model()
        held = live.get(name)
        assert who.user_id is not None
        mine = sum(1 for owner, _ in live.values() if owner == who.user_id)
        try:
            self.run(self.registry.register(request(name, ttl=ttl), who))
        except Forbidden:
            assert held is not None and held[0] != who.user_id and who is not ROOT
            return
        except RateLimited:
            assert held is None and mine >= 2
            return
        assert held is None or held[0] == who.user_id or who is ROOT
        assert not (held is None and mine >= 2)
        self.model[name] = (held[0] if held else who.user_id, self.clock.now + ttl)

    @rule(name=NAMES, who=WHO)
    def deregister(self, name: str, who: Identity) -> None:
        held = self.live_model().get(name)
        try:
            self.run(self.registry.deregister(name, who))
        except NotFound:
            assert held is None
            return
        except Forbidden:
            assert held is not None and held[0] != who.user_id and who is not ROOT
            return
        assert held is not None and (held[0] == who.user_id or who is ROOT)
        del self.model[name]

    @rule(seconds=st.integers(min_value=0, max_value=20))
    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @invariant()
    def live_registrations_match_the_model(self) -> None:
        if not hasattr(self, "registry"):
            return
        live = {r.name: (r.owner, r.expires_at) for r in self.run(self.registry.live())}
        assert live == self.live_model()

    def teardown(self) -> None:
        if hasattr(self, "registry"):
            self.run(self.registry.stop())
            self.loop.close()


def test_property_registry_state_machine(registry_backend: dict[str, Any]) -> None:
    machine = type("Machine", (RegistryMachine,), {"backend": registry_backend})
    examples = 40 if registry_backend["backend"] == "sqlite" else 15
    settings(max_examples=examples, stateful_step_count=25, deadline=None)(machine).TestCase().runTest()

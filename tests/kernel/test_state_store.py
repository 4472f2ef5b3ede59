"""The kernel's shared key-value store: in-process by default, Redis through the memory
plugin's ``robutler_state_store``, shared by two kernels (replicas)."""

from __future__ import annotations

import os
import uuid

from hypothesis import given
from hypothesis import strategies as st

import robutler_plugin_memory
import robutler_plugin_scripted
from robutler_kernel import Kernel
from robutler_kernel.config import config_from_dict
from robutler_kernel.state_store import MemoryStateStore
from robutler_kernel.testing import make_kernel

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_values_expire_after_their_ttl() -> None:
    clock = Clock()
    store = MemoryStateStore(clock)
    await store.set("a", b"1", ttl=10)
    clock.now = 9.9
    assert await store.get("a") == b"1"
    clock.now = 10
    assert await store.get("a") is None
    assert await store.delete("a") is False


async def test_a_full_store_drops_the_expired_then_the_oldest() -> None:
    clock = Clock()
    store = MemoryStateStore(clock, max_entries=3)
    await store.set("old", b"x", ttl=1)
    await store.set("b", b"b", ttl=100)
    await store.set("c", b"c", ttl=100)
    clock.now = 2  # "old" expired
    await store.set("d", b"d", ttl=100)
    assert [await store.get(k) for k in ("b", "c", "d")] == [b"b", b"c", b"d"]
    await store.set("e", b"e", ttl=100)  # full of live entries: the oldest ("b") goes
    assert await store.get("b") is None and await store.get("e") == b"e"


@given(st.lists(st.tuples(st.sampled_from(["set", "get", "delete", "tick"]), st.sampled_from("abc"),
                          st.integers(1, 5)), max_size=40))
def test_the_memory_store_behaves_like_a_dict_with_expiry(ops: list[tuple[str, str, int]]) -> None:
    import asyncio

    clock = Clock()
    store = MemoryStateStore(clock)
    model: dict[str, tuple[float, bytes]] = {}

    async def run() -> None:
        for op, key, n in ops:
            if op == "set":
                await store.set(key, bytes([n]), ttl=n)
                model[key] = (clock.now + n, bytes([n]))
            elif op == "tick":
                clock.now += n
            else:
                live = key in model and model[key][0] > clock.now
                if op == "get":
                    assert await store.get(key) == (model[key][1] if live else None)
                else:
                    assert await store.delete(key) is live
                    model.pop(key, None)

    asyncio.run(run())


async def test_hook_robutler_state_store() -> None:
    prefix = f"robutler:test:{uuid.uuid4().hex}:"

    def kernel() -> Kernel:
        config = config_from_dict({
            "server": {"metrics_port": None},
            "agents": {"a": {"model": "scripted/echo"}},
            "plugins": {"memory": {"redis_url": REDIS_URL, "key_prefix": prefix}},
        })
        return Kernel(config, plugins=[robutler_plugin_scripted, robutler_plugin_memory], discover=False)

    one, two = kernel(), kernel()
    await one.startup()
    await two.startup()
    try:
        assert type(one.state_store).__name__ == "RedisStateStore"
        await one.state_store.set("responses:r1", b"stored", ttl=30)
        assert await two.state_store.get("responses:r1") == b"stored"  # another replica finds it
        assert await two.state_store.delete("responses:r1") is True
        assert await one.state_store.get("responses:r1") is None
    finally:
        await one.shutdown()
        await two.shutdown()


async def test_without_a_shared_store_the_kernel_keeps_its_own() -> None:
    kernel = make_kernel(plugins=[robutler_plugin_scripted, robutler_plugin_memory])
    await kernel.startup()
    try:
        assert isinstance(kernel.state_store, MemoryStateStore)
    finally:
        await kernel.shutdown()

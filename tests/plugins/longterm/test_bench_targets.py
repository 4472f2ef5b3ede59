"""The benchmark's long-term memory targets build configs the kernel accepts, and seed
what they say (the load itself runs in ``python -m bench.targets_longterm``)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

import robutler_plugin_longterm as longterm
import robutler_plugin_scripted as scripted
from bench import targets_longterm as bench
from robutler_kernel import Kernel
from robutler_plugin_longterm.backends import make_backend
from robutler_plugin_longterm.config import LongTermConfig
from robutler_plugin_longterm.scope import Scope
from robutler_specs.caller import caller_key as user_key


@pytest.fixture
def longterm_bench_run() -> Any:
    yield bench
    bench.cleanup()


@pytest.mark.parametrize("name", [*bench.BASELINES, *bench.LONGTERM_TARGETS])
def test_every_target_config_loads(longterm_bench_run: Any, name: str) -> None:
    target = {**bench.BASELINES, **bench.LONGTERM_TARGETS}[name]
    assert target.config is not None
    config = target.config("http://127.0.0.1:9/v1")
    kernel = Kernel({"server": {"metrics_port": None}, **config}, plugins=[scripted, longterm], discover=False)
    assert kernel.agent(bench.AGENT) is not None
    assert target.request_body("json")["user"] == bench.BENCH_USER


def test_read_targets_are_seeded(longterm_bench_run: Any) -> None:
    config = bench.sqlite_config("seeded")
    bench.seed(config)
    backend = make_backend(msgspec.convert(config, LongTermConfig))

    async def count() -> int:
        await backend.open()
        try:
            return (await backend.listing(Scope(bench.AGENT, user_key("param", bench.BENCH_USER)), 1)).total
        finally:
            await backend.close()

    assert asyncio.run(count()) == bench.SEEDED_FACTS
    assert bench.remember("k", "v") == "Remembered 'k' (new)."

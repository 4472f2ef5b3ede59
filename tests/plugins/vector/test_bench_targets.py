"""The benchmark's vector memory targets build configs the kernel accepts (the load itself
runs in ``python -m bench.targets_vector``)."""

from __future__ import annotations

from typing import Any

import pytest

import robutler_plugin_scripted as scripted
import robutler_plugin_vector as vector
from bench import targets_vector as bench
from robutler_kernel import Kernel


@pytest.fixture
def vector_bench_run() -> Any:
    bench._SERVER["uri"] = "http://127.0.0.1:19530"
    yield bench
    bench._SERVER.clear()
    bench.cleanup()


@pytest.mark.parametrize("name", [*bench.VECTOR_BASELINES, *bench.VECTOR_TARGETS])
def test_every_target_config_loads(vector_bench_run: Any, name: str) -> None:
    target = {**bench.VECTOR_BASELINES, **bench.VECTOR_TARGETS}[name]
    assert target.config is not None
    config = target.config("http://127.0.0.1:9/v1")
    kernel = Kernel({"server": {"metrics_port": None}, **config}, plugins=[scripted, vector], discover=False)
    assert kernel.agent(bench.AGENT) is not None
    assert target.request_body("stream")["user"] == bench.BENCH_USER
    assert bench.store_document("x") == {"id": "0" * 32, "stored": True}

"""A finished request is freed by reference counting, not left to the cycle collector; a
serving process collects young objects less often.

A reference cycle through a request (its context, turn or guard) makes every request
garbage that only a collection frees: collections run more often, each walks more, and a
busy server spends a tenth of its CPU there. These tests run requests through the kernel
with the collector recording what it finds, and fail when any request object is in a cycle.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from robutler_kernel.testing import kernel_client, make_kernel
from robutler_kernel.turn import Guard, Turn
from robutler_specs import RequestContext

REQUEST_TYPES = (RequestContext, Turn, Guard)


@pytest.fixture
def cyclic_garbage() -> Iterator[list[Any]]:
    """What the collector finds unreachable from here on (``gc.DEBUG_SAVEALL``)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()


def request_objects(garbage: list[Any]) -> list[str]:
    gc.collect()
    return [type(o).__name__ for o in garbage if isinstance(o, REQUEST_TYPES)]


async def send(client: Any, agent: str, stream: bool, headers: dict[str, str] | None = None) -> None:
    body = {"model": agent, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    response = await client.post(f"/{agent}/chat/completions", json=body, headers=headers or {})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_served_request_leaves_no_cycle(cyclic_garbage: list[Any], stream: bool) -> None:
    kernel = make_kernel({"bot": {"model": "scripted/echo"}}, discover=True)
    async with kernel_client(kernel) as client:
        for _ in range(5):
            await send(client, "bot", stream)
        assert request_objects(cyclic_garbage) == []


async def test_a_refused_request_leaves_no_cycle(cyclic_garbage: list[Any]) -> None:
    kernel = make_kernel({"bot": {"model": "scripted/echo"}}, discover=True)
    async with kernel_client(kernel) as client:
        for _ in range(5):
            response = await client.post("/bot/chat/completions", json={"messages": "not a list"})
            assert response.status_code == 400
        assert request_objects(cyclic_garbage) == []


def test_serving_raises_the_collectors_young_threshold_and_never_lowers_it() -> None:
    from robutler_kernel.serve import GC_YOUNG_THRESHOLD, tune_collector

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_collector()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(50_000, 5, 5)  # an operator's own, higher: kept
        tune_collector()
        assert gc.get_threshold() == (50_000, 5, 5)
    finally:
        gc.set_threshold(*saved)

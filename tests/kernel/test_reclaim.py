"""The memory reclaimer: cycles collected and the heap trimmed once the server is quiet."""

from __future__ import annotations

import asyncio
import gc

from robutler_kernel import reclaim


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def _cycles(n: int) -> None:
    for _ in range(n):
        a, b = Node(), Node()
        a.other, b.other = b, a


def test_enabled_by_default_and_switched_off_by_env() -> None:
    assert reclaim.enabled({})
    assert not reclaim.enabled({"ROBUTLER_RECLAIM_MEMORY": "0"})
    assert not reclaim.enabled({"ROBUTLER_RECLAIM_MEMORY": "false"})


def test_reclaim_frees_reference_cycles() -> None:
    gc.disable()
    try:
        _cycles(1000)
        before, freed, after = reclaim.reclaim(reclaim._malloc_trim())
    finally:
        gc.enable()
    assert freed >= 2000
    assert before > 0 and after > 0


async def test_run_reclaims_when_quiet_after_growth(monkeypatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(reclaim, "reclaim", lambda trim=None: calls.append(1) or (2, 1, 1))
    # Any CPU use counts as quiet here (threads that earlier tests left in this process may
    # be busy); the threshold itself is the next test's.
    task = asyncio.create_task(reclaim.run(interval=0.01, quiet_cpu=4.0, growth=0, followups=0))
    await asyncio.sleep(0.2)
    task.cancel()
    assert calls, "a quiet process whose RSS grew was not reclaimed"


async def test_run_leaves_a_busy_process_alone(monkeypatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(reclaim, "reclaim", lambda trim=None: calls.append(1) or (2, 1, 1))
    task = asyncio.create_task(reclaim.run(interval=0.05, quiet_cpu=0.0, growth=0, followups=0))
    deadline = asyncio.get_running_loop().time() + 0.3
    while asyncio.get_running_loop().time() < deadline:
        sum(range(20000))  # busy: more CPU than quiet_cpu allows
        await asyncio.sleep(0)
    task.cancel()
    assert not calls

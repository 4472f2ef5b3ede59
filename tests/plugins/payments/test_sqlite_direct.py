"""The SQLite ledger's direct path: one request at a time runs its operations on the event
loop's thread, without the worker thread's two hand-offs; under load they queue and group.

- alone, an operation runs on the caller's thread; not alone, in the worker;
- a write lock held elsewhere never blocks the event loop: the operation queues and
  commits once the lock is free, while the loop keeps running;
- an operation queued before keeps its place: a direct one never overtakes it;
- an operation that fails after writing leaves nothing written;
- the WAL stays bounded although the direct connection never checkpoints: nothing writes
  directly while the worker's checkpoint is pending, so the checkpoint catches up and the
  next writer starts the WAL over;
- the ledger tells the two cases apart by itself: sequential requests go direct, a burst
  of concurrent reservations is grouped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from robutler_plugin_payments.ledger import AccountRef, SQLiteLedger
from robutler_plugin_payments.ledger.sqlite_worker import CHECKPOINT_EVERY, GroupCommitWorker

from .support import micro


def _opener(path: Path, *, direct: bool) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=0 if direct else 5, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        if direct:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        else:
            conn.execute("CREATE TABLE IF NOT EXISTS log (n INTEGER, thread INTEGER)")
        return conn

    return connect


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[GroupCommitWorker]:
    path = tmp_path / "worker.sqlite3"
    w = GroupCommitWorker(_opener(path, direct=False), connect_direct=_opener(path, direct=True))
    await w.run(lambda conn: None)  # opens both connections
    yield w
    await w.close()


def _log(n: int) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO log VALUES (?, ?)", (n, threading.get_ident()))
        return n

    return op


async def _logged(w: GroupCommitWorker) -> list[tuple[int, int]]:
    rows: list[tuple[int, int]] = await w.run(lambda conn: conn.execute("SELECT n, thread FROM log").fetchall())
    return rows


async def test_alone_an_operation_runs_on_the_callers_thread_else_in_the_worker(worker: GroupCommitWorker) -> None:
    assert await worker.run(_log(1), alone=True) == 1
    assert await worker.run(_log(2), alone=False) == 2
    threads = dict(await _logged(worker))
    assert threads[1] == threading.get_ident()
    assert threads[2] != threading.get_ident()


async def test_a_write_lock_held_elsewhere_queues_the_operation_and_the_loop_keeps_running(
    worker: GroupCommitWorker, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "worker.sqlite3", isolation_level=None)  # another process's writer
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    pending = asyncio.create_task(worker.run(_log(1), alone=True))
    await asyncio.sleep(0.5)
    assert not pending.done()
    assert ticks >= 5  # the loop was not held by the waiting operation (10 ms ticks; held: at most one)
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(pending, 5) == 1
    ticker.cancel()
    [(_, thread)] = await _logged(worker)
    assert thread != threading.get_ident()  # it ran in the worker, once the lock was free


async def test_a_direct_operation_never_overtakes_one_queued_before(worker: GroupCommitWorker, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "worker.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the worker's batch waits for this lock
    first = worker.submit(_log(1))
    second = asyncio.create_task(worker.run(_log(2), alone=True))
    await asyncio.sleep(0.1)
    assert not second.done()
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(asyncio.gather(first, second), 5) == [1, 2]
    assert [n for n, _ in await _logged(worker)] == [1, 2]


async def test_a_direct_operation_that_fails_after_writing_leaves_nothing(worker: GroupCommitWorker) -> None:
    def half(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO log VALUES (1, 0)")
        raise LookupError("the operation's own error")

    with pytest.raises(LookupError, match="own error"):
        await worker.run(half, alone=True)
    assert await _logged(worker) == []
    assert await worker.run(_log(2), alone=True) == 2  # the connection is usable again


async def test_the_wal_stays_bounded_though_the_direct_connection_never_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = SQLiteLedger(str(path))
    await ledger.open()
    await ledger.create_account("alice", micro(10_000))
    ref = AccountRef(account_id="alice")
    wal = Path(f"{path}-wal")
    sizes = []
    pairs = 4 * CHECKPOINT_EVERY
    for i in range(pairs):
        await ledger.reserve(ref, f"r{i}", micro(1), 0, ttl=60)
        await ledger.settle(f"r{i}", micro(1) // 2)
        if i % 32 == 31:
            sizes.append(wal.stat().st_size)
    # Each pair writes about 13 pages of 4 KiB: without checkpoints the WAL would grow to some
    # 27 MiB here; checkpointed, writers start it over from the beginning, so it stops growing
    # at about one checkpoint interval's pages, however slow the checkpoint's own fsync is.
    assert max(sizes) < 8 * 1024 * 1024, sizes
    half = len(sizes) // 2
    assert max(sizes[half:]) < max(sizes[:half]) * 1.1, sizes  # it stopped growing
    account = await ledger.account("alice")
    assert account is not None
    assert (account.available, account.reserved, account.spent) == (
        micro(10_000) - pairs * (micro(1) // 2), 0, pairs * (micro(1) // 2)
    )
    await ledger.close()


async def test_nothing_runs_directly_while_a_checkpoint_is_pending(worker: GroupCommitWorker) -> None:
    # A checkpoint that a direct writer races never catches up with the WAL, so the WAL is
    # never started over; the operations after it wait in the queue instead.
    release = threading.Event()
    checkpoint = worker._checkpoint

    def slow_checkpoint() -> None:
        release.wait(5)
        checkpoint()

    worker._checkpoint = slow_checkpoint  # type: ignore[method-assign]
    for _ in range(CHECKPOINT_EVERY):  # the last one queues the checkpoint
        await worker.run(_log(0), alone=True)
    assert worker.direct_commits == CHECKPOINT_EVERY
    pending = asyncio.create_task(worker.run(_log(1), alone=True))
    await asyncio.sleep(0.1)
    assert not pending.done()  # it did not write beside the running checkpoint
    release.set()
    assert await asyncio.wait_for(pending, 5) == 1
    assert await worker.run(_log(2), alone=True) == 2  # once the checkpoint is done, direct again
    threads = {n: thread for n, thread in await _logged(worker) if n}
    assert threads[1] != threading.get_ident() and threads[2] == threading.get_ident()


async def test_sequential_requests_go_direct_and_a_burst_is_grouped(tmp_path: Path) -> None:
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite3"))
    await ledger.open()
    await ledger.create_account("alice", micro(100))
    ref = AccountRef(account_id="alice")
    worker = ledger._worker
    assert worker is not None
    before = worker.direct_commits
    for i in range(5):  # one request at a time: reserve, then settle
        await ledger.reserve(ref, f"seq{i}", micro(1), 0, ttl=60)
        await ledger.settle(f"seq{i}", micro(1))
    assert worker.direct_commits - before == 10
    before = worker.direct_commits
    held = await asyncio.gather(*(ledger.reserve(ref, f"burst{i}", micro(1), 0, ttl=60) for i in range(30)))
    await asyncio.gather(*(ledger.settle(r.request_id, 0) for r in held))
    assert worker.direct_commits - before <= 1  # the rest waited for the worker, in batches
    account = await ledger.account("alice")
    assert account is not None and (account.available, account.reserved, account.spent) == (micro(95), 0, micro(5))
    await ledger.close()

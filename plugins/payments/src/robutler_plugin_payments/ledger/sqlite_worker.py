"""The SQLite ledger's worker thread, with group commit.

All of a ledger's operations run in one thread that owns the connection, so the event
loop never waits for SQLite (the write lock of another process, an ``fsync`` at a WAL
checkpoint). Operations that queue up while a transaction commits run together in the
next one: ``BEGIN IMMEDIATE``, the operations in order, one ``COMMIT``. Each operation
keeps its own result or error: the ledger's operations check before they write, so one
that fails has written nothing; should one fail after writing, the transaction is rolled
back and the batch runs again with each operation in its own ``SAVEPOINT`` (rolled back
alone). No result is reported before its transaction committed, so durability is the same
as one transaction per operation, while a busy server pays for one commit (and one thread
hand-off each way) per batch instead of one per operation.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

#: The most operations one transaction groups.
MAX_BATCH = 64

Operation = Callable[[sqlite3.Connection], Any]
_Item = tuple[Operation, asyncio.Future[Any], asyncio.AbstractEventLoop]


def _deliver(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.cancelled():
            continue  # the caller left; the operation still happened (or not) as reported
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class GroupCommitWorker:
    """Runs operations ``fn(conn)`` on one connection in one thread, batched per commit.

    :param connect: opens the connection (called in the worker thread, again after a failure).
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "payments-sqlite") -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Operation) -> asyncio.Future[Any]:
        """Queue ``fn``; the future resolves once its transaction committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((fn, future, loop))
        return future

    async def close(self) -> None:
        """Finish the queued operations, close the connection, end the thread."""
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._run(batch)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, batch: list[_Item]) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            if self._conn is None:
                self._conn = self._connect()
            results = self._transaction(self._conn, batch, savepoints=False)
            if not results:  # an operation failed half-way: again, each in a savepoint
                results = self._transaction(self._conn, batch, savepoints=True)
        except Exception as exc:  # the connection or the transaction failed: every operation did
            if self._conn is not None and not isinstance(exc, sqlite3.IntegrityError):
                self._conn.close()  # reconnect next time (the file may be back)
                self._conn = None
            results = [(future, None, exc) for _, future, _ in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for (_, _, loop), result in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append(result)
        for loop, delivered in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, delivered)
            except RuntimeError:  # that event loop is closed: nobody is waiting any more
                pass


    @staticmethod
    def _transaction(
        conn: sqlite3.Connection, batch: list[_Item], *, savepoints: bool
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """Run ``batch`` in one transaction. Without ``savepoints``, an operation that fails
        must have written nothing (the ledger's operations check before they write); if one
        fails after writing, the transaction is rolled back and ``[]`` returned."""
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, future, _ in batch:
                if savepoints:
                    conn.execute("SAVEPOINT op")
                    try:
                        value = fn(conn)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                        results.append((future, None, exc))
                    else:
                        conn.execute("RELEASE op")
                        results.append((future, value, None))
                    continue
                changes = conn.total_changes
                try:
                    value = fn(conn)
                except Exception as exc:
                    if conn.total_changes != changes or not conn.in_transaction:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        return []
                    results.append((future, None, exc))
                else:
                    results.append((future, value, None))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results


__all__ = ["MAX_BATCH", "GroupCommitWorker"]

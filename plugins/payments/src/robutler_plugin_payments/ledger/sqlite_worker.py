"""The SQLite ledger's worker thread, with group commit.

A ledger's operations run in one thread that owns the connection, so the event loop never
waits for SQLite (the write lock of another process, an ``fsync`` at a WAL checkpoint). Operations that queue up while a transaction commits run together in the
next one: ``BEGIN IMMEDIATE``, the operations in order, one ``COMMIT``. Each operation
keeps its own result or error: the ledger's operations check before they write, so one
that fails has written nothing; should one fail after writing, the transaction is rolled
back and the batch runs again with each operation in its own ``SAVEPOINT`` (rolled back
alone). No result is reported before its transaction committed, so durability is the same
as one transaction per operation, while a busy server pays for one commit (and one thread
hand-off each way) per batch instead of one per operation.

When the caller says it is alone (the ledger's one request in flight) and nothing is queued
or running, :meth:`GroupCommitWorker.run` skips the thread: the operation runs at once on
the caller's thread, on a second connection that never waits (``busy_timeout`` 0: a write
lock held elsewhere sends the operation to the queue instead) and never checkpoints (the
worker does, every :data:`CHECKPOINT_EVERY` of those transactions, while the operations
queue behind it). So the event loop pays
the operation's own work, never a wait or an ``fsync``, and one request at a time saves the
two thread hand-offs of each transaction (60-150 µs of CPU per operation, measured). With
several requests in flight everything queues, so that their operations group.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

#: The most operations one transaction groups.
MAX_BATCH = 64
#: Transactions run on the caller's thread between two checkpoints of the WAL by the worker
#: (a reservation or settlement writes 6-7 pages: about the 1,000 pages at which SQLite
#: checkpoints on its own when the WAL is written by one connection).
CHECKPOINT_EVERY = 128

T = TypeVar("T")

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


#: Queued by the direct path: the worker checkpoints the WAL.
_CHECKPOINT: Any = object()


class GroupCommitWorker:
    """Runs operations ``fn(conn)`` on one connection in one thread, batched per commit.

    :param connect: opens the connection (called in the worker thread, again after a failure).
    :param connect_direct: opens the connection of :meth:`run`'s direct path (in the worker
        thread, after ``connect``); it must not wait for locks (``timeout=0``) nor
        checkpoint (``PRAGMA wal_autocheckpoint = 0``). ``None``: every operation queues.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "payments-sqlite",
                 connect_direct: Callable[[], sqlite3.Connection] | None = None) -> None:
        self._connect = connect
        self._connect_direct = connect_direct
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()  # or _CHECKPOINT
        self._conn: sqlite3.Connection | None = None
        self._direct: sqlite3.Connection | None = None
        #: Operations queued and not yet done, plus one while an operation runs directly.
        self._busy = 0
        self._busy_lock = threading.Lock()
        #: Transactions run on the caller's thread so far.
        self.direct_commits = 0
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Operation) -> asyncio.Future[Any]:
        """Queue ``fn``; the future resolves once its transaction committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._busy_lock:
            self._busy += 1
        self._queue.put((fn, future, loop))
        return future

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """``fn``'s result once its transaction committed: run at once on this thread when
        the caller is ``alone`` (nothing would join its batch), the worker idle and the write
        lock free; else queued (:meth:`submit`).

        Order is kept: an operation runs directly only when every one submitted before it
        is done, and one submitted meanwhile (by another thread) waits for its commit."""
        if not alone or self._direct is None or not self._claim():
            if self._direct is None and self._connect_direct is not None:
                await self.submit(self._open_direct)
            result: T = await self.submit(fn)
            return result
        try:
            done, value = self._run_direct(fn)
        finally:
            with self._busy_lock:
                self._busy -= 1
        if not done:  # the write lock is held elsewhere: queue
            value = await self.submit(fn)
        else:
            # Once committed (not before: a caller cancelled now has its operation done, as
            # when it waits for the worker), let the other tasks run, so that a caller
            # looping over operations does not hold the loop, and they see each other.
            await asyncio.sleep(0)
        return value

    def _claim(self) -> bool:
        with self._busy_lock:
            if self._busy:
                return False
            self._busy = 1
            return True

    def _open_direct(self, _: sqlite3.Connection) -> None:
        """(In the worker thread, after ``connect``: the schema exists.)"""
        if self._direct is None and self._connect_direct is not None:
            self._direct = self._connect_direct()

    def _run_direct(self, fn: Callable[[sqlite3.Connection], T]) -> tuple[bool, Any]:
        """``(True, result)``, or ``(False, None)`` when the write lock is taken."""
        conn = self._direct
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return False, None
            self._drop_direct()
            raise
        try:
            value = fn(conn)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise
        except sqlite3.Error:
            self._drop_direct()  # closing rolls back; the next operation queues and reopens
            raise
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.direct_commits += 1
        if self.direct_commits % CHECKPOINT_EVERY == 0:
            # Counted as work in flight until it is done, so that nothing writes directly
            # meanwhile: a checkpoint that catches up with the WAL lets the next writer
            # start the WAL over; one racing a writer never would, and the WAL would grow.
            with self._busy_lock:
                self._busy += 1
            self._queue.put(_CHECKPOINT)
        return True, value

    def _drop_direct(self) -> None:
        conn, self._direct = self._direct, None
        if conn is not None:
            conn.close()

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
            if first is _CHECKPOINT:
                self._checkpoint()
                continue
            batch = [first]
            checkpoint = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                if item is _CHECKPOINT:
                    checkpoint = True
                    continue
                batch.append(item)
            self._run(batch)
            if checkpoint:
                self._checkpoint()
        for conn in (self._conn, self._direct):
            if conn is not None:
                conn.close()
        self._conn = self._direct = None

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database for the direct path's transactions (outside
        any transaction; PASSIVE: it waits for nobody, and a failed one is made up by the
        next). Operations meanwhile queue behind it (see :meth:`_run_direct`)."""
        try:
            if self._conn is not None:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass
        finally:
            with self._busy_lock:
                self._busy -= 1

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
        with self._busy_lock:
            self._busy -= len(batch)
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

"""Group commit on the event loop: the hot operations of one ledger, run in batches.

A ledger has one :class:`GroupCommit` per process. Every reservation, settlement and
release is queued; one writer takes **everything queued at that moment** (at most
``max_batch``) and runs it in one transaction (one lock acquisition on the account row, one
commit), then takes what queued meanwhile, and so on until the queue is empty. Nothing
waits for a batch to fill: with one caller at a time a batch is that one operation, run at
once. Each operation keeps its own result or error, as if it had run alone, and no caller
hears its result before its batch committed: durability and ordering are those of one
transaction per operation, while a busy process pays for one commit per batch. Operations
run in the order they were queued, and a caller that leaves (cancelled) does not reorder
them: an operation it asks for next runs after the one it left.

A batch that fails as a whole (the connection is lost, the database restarted) fails
every operation in it with the same error, and nothing of it is written (one transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

#: The most operations one transaction groups.
MAX_BATCH = 64

Op = TypeVar("Op")

#: Runs a batch in one transaction: one result per operation, in order; an exception
#: *instance* in that list is that operation's error. Raising fails the whole batch.
RunBatch = Callable[[list[Op]], Awaitable[list[Any]]]


class GroupCommit(Generic[Op]):
    """Queues operations and runs them in batches, one batch at a time."""

    def __init__(self, run: RunBatch[Op], max_batch: int = MAX_BATCH) -> None:
        self._run = run
        self.max_batch = max_batch
        self._queue: list[tuple[Op, asyncio.Future[Any], bool]] = []
        self._writer: asyncio.Task[None] | None = None
        #: Batches committed and operations in them (for tests and the docs' figures).
        self.batches = 0
        self.operations = 0

    def submit(self, op: Op, *, keep: bool = False) -> asyncio.Future[Any]:
        """Queue ``op``; the future resolves once its batch committed. Cancelling the future
        (the caller left) before its batch starts withdraws the operation, unless ``keep``
        (a settlement runs to the end whoever waits for it); after, it runs anyway."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future, keep))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return future

    async def close(self) -> None:
        """Wait for what is queued to be written."""
        writer = self._writer
        if writer is not None:
            await asyncio.gather(asyncio.shield(writer), return_exceptions=True)

    async def _write(self) -> None:
        batch: list[tuple[Op, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                taken = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                batch = [(op, future) for op, future, keep in taken if keep or not future.cancelled()]
                if not batch:
                    continue
                try:
                    results = await self._run([op for op, _ in batch])
                except Exception as exc:  # the batch failed as a whole: every operation did
                    results = [exc] * len(batch)
                self.batches += 1
                self.operations += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # the caller left; the operation happened (or not) as reported
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                batch = []
        except BaseException:  # the writer was cancelled (the event loop is closing)
            for future in [f for _, f in batch] + [f for _, f, _ in self._queue]:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._writer = None


__all__ = ["MAX_BATCH", "GroupCommit", "RunBatch"]

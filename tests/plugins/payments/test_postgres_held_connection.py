"""The PostgreSQL ledger's batches run on one connection they keep, not one acquired from
the pool per batch; the pool's other connections serve everything else.

- batches and other operations run on different connections (so an account read never
  waits behind a batch's connection, and a batch never pays a pool acquire and release);
- a pool of one connection keeps none for the batches: reads and batches still share it;
- a batch that times out while its statement waits for a lock commits nothing (the
  statement is cancelled, not left to finish once the lock comes), and the next batch
  commits.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from robutler_plugin_payments.ledger import AccountRef
from robutler_plugin_payments.ledger.postgres import PostgresLedger
from robutler_specs import ServiceUnavailable

from .support import PAYMENTS_PG_DSN, micro

ALICE = AccountRef(account_id="alice")


async def _last_queries(schema: str) -> dict[int, str]:
    """The last statement of each open connection that used ``schema``, by backend pid."""
    conn = await asyncpg.connect(PAYMENTS_PG_DSN)
    try:
        rows = await conn.fetch(
            "SELECT pid, query FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            f'%"{schema}"%',
        )
    finally:
        await conn.close()
    return {row["pid"]: row["query"] for row in rows}


async def test_batches_keep_one_connection_and_other_operations_use_the_rest(payments_pg_schema: str) -> None:
    ledger = PostgresLedger(PAYMENTS_PG_DSN, schema=payments_pg_schema, pool_size=3)
    await ledger.open()
    try:
        await ledger.create_account("alice", micro(100))
        for i in range(10):
            await ledger.reserve(ALICE, f"r{i}", micro(1), 0, ttl=60)
            await ledger.settle(f"r{i}", micro(1))
            assert (await ledger.account("alice")) is not None
        last = await _last_queries(payments_pg_schema)
        batches = [pid for pid, query in last.items() if "ledger_op" in query or "apply_ops" in query]
        reads = [pid for pid, query in last.items() if "FROM" in query and "ledger_op" not in query]
        # One connection ran every batch, another the reads; a pool acquired per batch would
        # have handed the reads the same (most recently released) connection.
        assert len(batches) == 1 and reads and batches[0] not in reads, last
        account = await ledger.account("alice")
        assert account is not None
        assert (account.available, account.reserved, account.spent) == (micro(90), 0, micro(10))
    finally:
        await ledger.close()


async def test_a_pool_of_one_connection_serves_batches_and_reads(payments_pg_schema: str) -> None:
    ledger = PostgresLedger(PAYMENTS_PG_DSN, schema=payments_pg_schema, pool_size=1, timeout=5)
    await ledger.open()
    try:
        await ledger.create_account("alice", micro(100))

        async def pair(i: int) -> None:
            await ledger.reserve(ALICE, f"r{i}", micro(1), 0, ttl=60)
            assert (await ledger.account("alice")) is not None
            await ledger.settle(f"r{i}", micro(1))

        await asyncio.wait_for(asyncio.gather(*(pair(i) for i in range(20))), 20)
        account = await ledger.account("alice")
        assert account is not None
        assert (account.available, account.reserved, account.spent) == (micro(80), 0, micro(20))
    finally:
        await ledger.close()


async def test_a_batch_that_times_out_commits_nothing_and_the_next_one_commits(
    payments_pg_schema: str,
) -> None:
    ledger = PostgresLedger(PAYMENTS_PG_DSN, schema=payments_pg_schema, timeout=0.5)
    await ledger.open()
    blocker = await asyncpg.connect(PAYMENTS_PG_DSN)
    try:
        await ledger.create_account("alice", micro(100))
        await ledger.reserve(ALICE, "before", micro(1), 0, ttl=60)  # the batches' connection is open
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute(f'SELECT 1 FROM "{payments_pg_schema}".accounts WHERE id = $1 FOR UPDATE', "alice")
        with pytest.raises(ServiceUnavailable) as refused:
            await ledger.reserve(ALICE, "stuck", micro(1), 0, ttl=60)
        assert refused.value.status == 503 and "payments ledger" in refused.value.message
        await locked.rollback()
        assert (await ledger.reserve(ALICE, "after", micro(1), 0, ttl=60)).amount == micro(1)
        # The stuck statement was cancelled: it did not reserve once the lock came.
        assert await ledger.reservation("stuck") is None
        account = await ledger.account("alice")
        assert account is not None
        assert (account.available, account.reserved) == (micro(98), micro(2))
    finally:
        await blocker.close()
        await ledger.close()

"""The shared ledger: PostgreSQL through an asyncpg pool.

The hot path is one statement per *batch* (group commit, :mod:`.batch`): every
reservation, settlement and release queued in this process when the writer is free goes
into one call of the PL/pgSQL function ``apply_ops`` (created with the schema), which

* locks the accounts of the batch, in id order (so batches of several replicas never
  deadlock each other), and reads each once;
* runs the operations in order, each doing what it does alone, with the accounts'
  balances kept in variables:

  - reserve: release the account's expired holds, hold ``min(wanted, available)`` only if
    ``available >= minimum``, insert the reservation (a request id that exists already is
    that operation's unique-violation error, reported in its row);
  - settle / release: close the reservation (``WHERE status = 'held'``, so a second settle
    finds nothing), move the charge to ``spent`` and the rest back to ``available``, insert
    the ``charge`` transaction; a reservation that expired meanwhile is charged from
    ``available``;

* writes each account once, and commits once.

Any other error fails the statement and writes nothing; the batch then runs one operation
at a time (``ledger_op``), so that only the failing one fails. One caller at a time makes
batches of one: one round trip per operation. Sixty-four callers on one account take the
account's row lock (and wait for the commit's flush) once per batch instead of once per
operation, and update its row once per batch instead of twice per request. CHECK
constraints are the last guard against a negative balance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from robutler_specs import ServiceUnavailable

from .base import (
    HEARTBEAT_INTERVAL,
    HELD,
    OWNER_TIMEOUT,
    TOKEN,
    TOPUP,
    TRANSFER_IN,
    TRANSFER_OUT,
    USER,
    Account,
    AccountExists,
    AccountNotFound,
    AccountRef,
    InsufficientCredits,
    Ledger,
    Owner,
    Reservation,
    Settlement,
    Transaction,
    UnknownReservation,
    split,
)
from .batch import GroupCommit

T = TypeVar("T")


class _Op(NamedTuple):
    """One operation of a batch: ``r`` reserve, ``s`` settle, ``x`` release."""

    kind: str
    request_id: str
    ref: AccountRef | None
    #: reserve: wanted; settle: the cost.
    amount: int
    minimum: int
    #: reserve: the agent; settle: the charge's detail.
    text: str | None
    ttl: float

#: The parameters and result rows of both batch functions (apply_batch, apply_ops): the same
#: arrays, one element per operation, and one row per operation, so either runs a batch.
_BATCH_SIGNATURE = """(
    p_kind TEXT[], p_request TEXT[], p_account TEXT[], p_token TEXT[], p_amount BIGINT[], p_minimum BIGINT[],
    p_text TEXT[], p_ttl DOUBLE PRECISION[], p_now DOUBLE PRECISION, p_owner TEXT
) RETURNS TABLE (o_outcome TEXT, o_account TEXT, o_amount BIGINT, o_charged BIGINT, o_available BIGINT,
                 o_reserved BIGINT, o_holds BIGINT, o_until DOUBLE PRECISION, o_state TEXT, o_message TEXT)
LANGUAGE plpgsql AS $fn$"""

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'token')),
    available BIGINT NOT NULL CHECK (available >= 0),
    reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    spent BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
    token_hash TEXT UNIQUE,
    owner TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.reservations (
    request_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES {s}.accounts (id),
    amount BIGINT NOT NULL CHECK (amount >= 0),
    status TEXT NOT NULL CHECK (status IN ('held', 'settled', 'released', 'expired')),
    charged BIGINT NOT NULL DEFAULT 0 CHECK (charged >= 0),
    agent TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    closed_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS reservations_held ON {s}.reservations (account_id, expires_at) WHERE status = 'held';
CREATE TABLE IF NOT EXISTS {s}.transactions (
    id BIGSERIAL PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES {s}.accounts (id),
    kind TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'transfer_in', 'transfer_out')),
    amount BIGINT NOT NULL,
    request_id TEXT,
    detail TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (request_id, kind)
);
CREATE INDEX IF NOT EXISTS transactions_account ON {s}.transactions (account_id, id);
INSERT INTO {s}.ledger_meta (key, value) VALUES ('schema_version', '1') ON CONFLICT DO NOTHING;
-- Version 2: reservations name the process that holds them (see ledger/base.py).
CREATE TABLE IF NOT EXISTS {s}.ledger_owners (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL
);
ALTER TABLE {s}.reservations ADD COLUMN IF NOT EXISTS owner TEXT;
CREATE INDEX IF NOT EXISTS reservations_owner ON {s}.reservations (owner) WHERE status = 'held';
DROP FUNCTION IF EXISTS {s}.reserve(TEXT, TEXT, BIGINT, BIGINT, TEXT, TEXT, DOUBLE PRECISION, DOUBLE PRECISION);
UPDATE {s}.ledger_meta SET value = '2' WHERE key = 'schema_version' AND value < '2';
-- One round trip per reservation: release the account's expired holds, lock the account,
-- hold min(wanted, available) if available >= minimum. This version reserves through
-- ledger_op (below, the same steps); reserve stays for servers of the previous version that
-- share the ledger during a rolling upgrade. Reservation rows are locked before
-- the account row, as in a settlement, so the two never deadlock.
CREATE OR REPLACE FUNCTION {s}.reserve(
    p_account TEXT, p_token_hash TEXT, p_wanted BIGINT, p_minimum BIGINT,
    p_request TEXT, p_agent TEXT, p_now DOUBLE PRECISION, p_expires DOUBLE PRECISION, p_owner TEXT
) RETURNS TABLE (account_id TEXT, hold BIGINT, available BIGINT, reserved BIGINT)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_account TEXT := p_account;
    v_freed BIGINT;
    v_available BIGINT;
    v_reserved BIGINT;
    v_hold BIGINT;
BEGIN
    IF v_account IS NULL THEN
        SELECT a.id INTO v_account FROM {s}.accounts a WHERE a.token_hash = p_token_hash;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    WITH expired AS (
        UPDATE {s}.reservations r SET status = 'expired', closed_at = p_now
        WHERE r.account_id = v_account AND r.status = 'held' AND r.expires_at < p_now
        RETURNING r.amount
    )
    SELECT COALESCE(SUM(e.amount), 0)::BIGINT INTO v_freed FROM expired e;
    SELECT a.available + v_freed, a.reserved - v_freed INTO v_available, v_reserved
    FROM {s}.accounts a WHERE a.id = v_account AND (p_account IS NULL OR a.kind = 'user') FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_hold := CASE WHEN v_available >= p_minimum THEN LEAST(p_wanted, v_available) ELSE 0 END;
    IF v_freed > 0 OR v_hold > 0 THEN
        UPDATE {s}.accounts a SET available = v_available - v_hold, reserved = v_reserved + v_hold
        WHERE a.id = v_account;
    END IF;
    IF v_available < p_minimum THEN
        RETURN QUERY SELECT v_account, NULL::BIGINT, v_available, v_reserved;
        RETURN;
    END IF;
    INSERT INTO {s}.reservations (request_id, account_id, amount, status, agent, created_at, expires_at, owner)
    VALUES (p_request, v_account, v_hold, 'held', p_agent, p_now, p_expires, p_owner);
    RETURN QUERY SELECT v_account, v_hold, v_available - v_hold, v_reserved + v_hold;
END
$fn$;
-- One reservation ('r'), settlement ('s') or release ('x'), as the group commit runs it
-- (ledger/batch.py): alone (a batch of one), or inside apply_batch.
CREATE OR REPLACE FUNCTION {s}.ledger_op(
    p_kind TEXT, p_request TEXT, p_account TEXT, p_token TEXT, p_amount BIGINT, p_minimum BIGINT,
    p_text TEXT, p_ttl DOUBLE PRECISION, p_now DOUBLE PRECISION, p_owner TEXT,
    OUT o_outcome TEXT, OUT o_account TEXT, OUT o_amount BIGINT, OUT o_charged BIGINT, OUT o_available BIGINT,
    OUT o_reserved BIGINT, OUT o_holds BIGINT, OUT o_until DOUBLE PRECISION, OUT o_state TEXT, OUT o_message TEXT
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_account TEXT;
    v_freed BIGINT;
    v_available BIGINT;
    v_reserved BIGINT;
    v_hold BIGINT;
    v_amount BIGINT;
    v_charged BIGINT;
    v_status TEXT;
    v_was TEXT;
BEGIN
    IF p_kind = 'r' THEN
        v_account := p_account;
        IF v_account IS NULL THEN
            SELECT a.id INTO v_account FROM {s}.accounts a WHERE a.token_hash = p_token;
            IF NOT FOUND THEN
                o_outcome := 'missing';
            END IF;
        END IF;
        IF o_outcome IS NULL THEN
            WITH expired AS (
                UPDATE {s}.reservations r SET status = 'expired', closed_at = p_now
                WHERE r.account_id = v_account AND r.status = 'held' AND r.expires_at < p_now
                RETURNING r.amount
            )
            SELECT COALESCE(SUM(e.amount), 0)::BIGINT INTO v_freed FROM expired e;
            SELECT a.available + v_freed, a.reserved - v_freed INTO v_available, v_reserved
            FROM {s}.accounts a WHERE a.id = v_account AND (p_account IS NULL OR a.kind = 'user') FOR UPDATE;
            IF NOT FOUND THEN
                o_outcome := 'missing';
            ELSE
                v_hold := CASE WHEN v_available >= p_minimum THEN LEAST(p_amount, v_available) ELSE 0 END;
                IF v_freed > 0 OR v_hold > 0 THEN
                    UPDATE {s}.accounts a SET available = v_available - v_hold, reserved = v_reserved + v_hold
                    WHERE a.id = v_account;
                END IF;
                o_account := v_account;
                IF v_available < p_minimum THEN
                    o_outcome := 'short';
                    o_available := v_available;
                    o_reserved := v_reserved;
                    SELECT COUNT(*), MAX(r.expires_at) INTO o_holds, o_until FROM {s}.reservations r
                    WHERE r.account_id = v_account AND r.status = 'held';
                ELSE
                    INSERT INTO {s}.reservations (request_id, account_id, amount, status, agent, created_at,
                                                   expires_at, owner)
                    VALUES (p_request, v_account, v_hold, 'held', p_text, p_now, p_now + p_ttl, p_owner);
                    o_outcome := 'ok';
                    o_amount := v_hold;
                END IF;
            END IF;
        END IF;
    ELSE
        v_status := CASE WHEN p_kind = 's' THEN 'settled' ELSE 'released' END;
        UPDATE {s}.reservations r SET status = v_status, charged = LEAST(GREATEST(p_amount, 0), r.amount),
            closed_at = p_now
        WHERE r.request_id = p_request AND r.status = 'held'
        RETURNING r.account_id, r.amount, r.charged INTO v_account, v_amount, v_charged;
        IF FOUND THEN
            UPDATE {s}.accounts a SET reserved = a.reserved - v_amount,
                available = a.available + (v_amount - v_charged), spent = a.spent + v_charged
            WHERE a.id = v_account;
            o_outcome := 'ok';
        ELSE
            SELECT r.account_id, r.status, r.charged INTO v_account, v_was, v_charged
            FROM {s}.reservations r WHERE r.request_id = p_request FOR UPDATE;
            IF NOT FOUND THEN
                o_outcome := 'unknown';
            ELSIF v_was <> 'expired' THEN  -- settled or released before
                o_outcome := 'already';
            ELSE  -- given back already: charge what is available now
                SELECT a.available INTO v_available FROM {s}.accounts a WHERE a.id = v_account FOR UPDATE;
                v_charged := LEAST(GREATEST(p_amount, 0), v_available);
                UPDATE {s}.accounts a SET available = a.available - v_charged, spent = a.spent + v_charged
                WHERE a.id = v_account;
                UPDATE {s}.reservations r SET status = v_status, charged = v_charged, closed_at = p_now
                WHERE r.request_id = p_request;
                o_outcome := 'late';
                o_available := v_available;
            END IF;
        END IF;
        IF o_outcome IN ('ok', 'late') AND p_kind = 's' THEN
            INSERT INTO {s}.transactions (account_id, kind, amount, request_id, detail, created_at)
            VALUES (v_account, 'charge', -v_charged, p_request, p_text, p_now)
            ON CONFLICT (request_id, kind) DO NOTHING;
        END IF;
        o_account := v_account;
        o_amount := v_amount;
        o_charged := v_charged;
    END IF;
END
$fn$;
-- The accounts a batch touches, locked in id order (so batches of several processes cannot
-- deadlock each other): those named by id or token, and those of the reservations its
-- settlements and releases close. Each is found by one index lookup, whatever the tables'
-- statistics say: an `= ANY` over the batch's request ids, planned on a new ledger's empty
-- tables, scanned every reservation, which made every batch slower than the one before.
CREATE OR REPLACE FUNCTION {s}.lock_accounts(p_kind TEXT[], p_request TEXT[], p_account TEXT[], p_token TEXT[])
RETURNS VOID LANGUAGE plpgsql AS $fn$
DECLARE
    v_id TEXT;
BEGIN
    FOR v_id IN
        SELECT DISTINCT x.id FROM (
            SELECT u.account AS id FROM unnest(p_account) AS u(account)
            UNION ALL
            SELECT (SELECT t.id FROM {s}.accounts t WHERE t.token_hash = u.token)
            FROM unnest(p_token) AS u(token) WHERE u.token IS NOT NULL
            UNION ALL
            SELECT (SELECT r.account_id FROM {s}.reservations r WHERE r.request_id = u.request)
            FROM unnest(p_kind, p_request) AS u(kind, request) WHERE u.kind <> 'r'
        ) x WHERE x.id IS NOT NULL ORDER BY x.id
    LOOP
        PERFORM 1 FROM {s}.accounts a WHERE a.id = v_id FOR UPDATE;
    END LOOP;
END
$fn$;
-- Group commit: the operations of one process, in order, in one statement (so one
-- transaction and one commit). Each runs in its own subtransaction: one that fails is
-- rolled back alone and returns its error. The accounts of the batch are locked first, in
-- id order, so batches of several processes cannot deadlock each other.
CREATE OR REPLACE FUNCTION {s}.apply_batch{batch_signature}
DECLARE
    k INT;
BEGIN
    PERFORM {s}.lock_accounts(p_kind, p_request, p_account, p_token);
    FOR k IN 1 .. cardinality(p_kind) LOOP
        BEGIN
            SELECT * INTO o_outcome, o_account, o_amount, o_charged, o_available, o_reserved, o_holds, o_until,
                          o_state, o_message
            FROM {s}.ledger_op(p_kind[k], p_request[k], p_account[k], p_token[k], p_amount[k], p_minimum[k],
                               p_text[k], p_ttl[k], p_now, p_owner);
        EXCEPTION
            WHEN deadlock_detected OR serialization_failure THEN
                RAISE;  -- the whole batch is retried
            WHEN OTHERS THEN
                o_outcome := 'error'; o_account := NULL; o_amount := NULL; o_charged := NULL;
                o_available := NULL; o_reserved := NULL; o_holds := NULL; o_until := NULL;
                GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT;
        END;
        RETURN NEXT;
    END LOOP;
END
$fn$;
-- Group commit, version 3: the operations of one process, in order, in one statement (one
-- transaction, one commit). The accounts of the batch are locked first, in id order (so
-- batches of several processes cannot deadlock each other), read once, kept in variables
-- while the operations run, and written once at the end: one account update per batch, not
-- one per operation. A duplicate reservation is reported by its row (ON CONFLICT), not by a
-- subtransaction; any other error fails the statement, and the caller runs the operations
-- again one by one (ledger_op) so that only the failing one fails. apply_batch (above, one
-- subtransaction per operation) stays for servers of the previous version during a rolling
-- upgrade.
CREATE OR REPLACE FUNCTION {s}.apply_ops{batch_signature}
DECLARE
    k INT;
    i INT;
    v_ids TEXT[] := '{{}}';
    v_kinds TEXT[] := '{{}}';
    v_av BIGINT[] := '{{}}';
    v_re BIGINT[] := '{{}}';
    v_sp BIGINT[] := '{{}}';
    v_swept BOOLEAN[] := '{{}}';
    v_account TEXT;
    v_kind TEXT;
    v_available BIGINT;
    v_reserved BIGINT;
    v_spent BIGINT;
    v_freed BIGINT;
    v_hold BIGINT;
    v_amount BIGINT;
    v_charged BIGINT;
    v_status TEXT;
    v_was TEXT;
BEGIN
    PERFORM {s}.lock_accounts(p_kind, p_request, p_account, p_token);
    FOR k IN 1 .. cardinality(p_kind) LOOP
        o_outcome := NULL; o_account := NULL; o_amount := NULL; o_charged := NULL; o_available := NULL;
        o_reserved := NULL; o_holds := NULL; o_until := NULL; o_state := NULL; o_message := NULL;
        IF p_kind[k] = 'r' THEN
            v_account := p_account[k];
            IF v_account IS NULL THEN
                SELECT a.id INTO v_account FROM {s}.accounts a WHERE a.token_hash = p_token[k];
            END IF;
            i := array_position(v_ids, v_account);
            IF v_account IS NOT NULL AND (i IS NULL OR NOT v_swept[i]) THEN
                WITH expired AS (
                    UPDATE {s}.reservations r SET status = 'expired', closed_at = p_now
                    WHERE r.account_id = v_account AND r.status = 'held' AND r.expires_at < p_now
                    RETURNING r.amount
                )
                SELECT COALESCE(SUM(e.amount), 0)::BIGINT INTO v_freed FROM expired e;
                IF i IS NULL THEN
                    SELECT a.kind, a.available, a.reserved, a.spent INTO v_kind, v_available, v_reserved, v_spent
                    FROM {s}.accounts a WHERE a.id = v_account;
                    IF FOUND THEN
                        v_ids := v_ids || v_account; v_kinds := v_kinds || v_kind;
                        v_av := v_av || (v_available + v_freed); v_re := v_re || (v_reserved - v_freed);
                        v_sp := v_sp || v_spent; v_swept := v_swept || TRUE;
                        i := cardinality(v_ids);
                    END IF;
                ELSE
                    v_av[i] := v_av[i] + v_freed; v_re[i] := v_re[i] - v_freed; v_swept[i] := TRUE;
                END IF;
            END IF;
            IF i IS NULL OR (p_account[k] IS NOT NULL AND v_kinds[i] <> 'user') THEN
                o_outcome := 'missing';
            ELSE
                o_account := v_account;
                IF v_av[i] < p_minimum[k] THEN
                    o_outcome := 'short';
                    o_available := v_av[i];
                    o_reserved := v_re[i];
                    SELECT COUNT(*), MAX(r.expires_at) INTO o_holds, o_until FROM {s}.reservations r
                    WHERE r.account_id = v_account AND r.status = 'held';
                ELSE
                    v_hold := LEAST(p_amount[k], v_av[i]);
                    INSERT INTO {s}.reservations (request_id, account_id, amount, status, agent, created_at,
                                                   expires_at, owner)
                    VALUES (p_request[k], v_account, v_hold, 'held', p_text[k], p_now, p_now + p_ttl[k], p_owner)
                    ON CONFLICT (request_id) DO NOTHING;
                    IF FOUND THEN
                        v_av[i] := v_av[i] - v_hold; v_re[i] := v_re[i] + v_hold;
                        o_outcome := 'ok';
                        o_amount := v_hold;
                    ELSE
                        o_outcome := 'error'; o_account := NULL; o_state := '23505';
                        o_message := format('duplicate key value violates unique constraint: reservation %s exists', p_request[k]);
                    END IF;
                END IF;
            END IF;
        ELSE
            v_status := CASE WHEN p_kind[k] = 's' THEN 'settled' ELSE 'released' END;
            UPDATE {s}.reservations r SET status = v_status, charged = LEAST(GREATEST(p_amount[k], 0), r.amount),
                closed_at = p_now
            WHERE r.request_id = p_request[k] AND r.status = 'held'
            RETURNING r.account_id, r.amount, r.charged INTO v_account, v_amount, v_charged;
            IF FOUND THEN
                o_outcome := 'ok';
            ELSE
                SELECT r.account_id, r.status, r.charged INTO v_account, v_was, v_charged
                FROM {s}.reservations r WHERE r.request_id = p_request[k];
                IF NOT FOUND THEN
                    o_outcome := 'unknown';
                ELSIF v_was <> 'expired' THEN
                    o_outcome := 'already';
                ELSE
                    o_outcome := 'late';
                END IF;
            END IF;
            IF o_outcome IN ('ok', 'late') THEN
                i := array_position(v_ids, v_account);
                IF i IS NULL THEN  -- the account exists: a reservation refers to it
                    SELECT a.kind, a.available, a.reserved, a.spent INTO v_kind, v_available, v_reserved, v_spent
                    FROM {s}.accounts a WHERE a.id = v_account;
                    v_ids := v_ids || v_account; v_kinds := v_kinds || v_kind; v_av := v_av || v_available;
                    v_re := v_re || v_reserved; v_sp := v_sp || v_spent; v_swept := v_swept || FALSE;
                    i := cardinality(v_ids);
                END IF;
                IF o_outcome = 'ok' THEN
                    v_re[i] := v_re[i] - v_amount; v_av[i] := v_av[i] + (v_amount - v_charged);
                    v_sp[i] := v_sp[i] + v_charged;
                ELSE  -- given back already: charge what is available now
                    o_available := v_av[i];
                    v_charged := LEAST(GREATEST(p_amount[k], 0), v_av[i]);
                    v_av[i] := v_av[i] - v_charged; v_sp[i] := v_sp[i] + v_charged;
                    UPDATE {s}.reservations r SET status = v_status, charged = v_charged, closed_at = p_now
                    WHERE r.request_id = p_request[k];
                END IF;
                IF p_kind[k] = 's' THEN
                    INSERT INTO {s}.transactions (account_id, kind, amount, request_id, detail, created_at)
                    VALUES (v_account, 'charge', -v_charged, p_request[k], p_text[k], p_now)
                    ON CONFLICT (request_id, kind) DO NOTHING;
                END IF;
            END IF;
            o_account := v_account;
            o_amount := v_amount;
            o_charged := v_charged;
        END IF;
        RETURN NEXT;
    END LOOP;
    FOR i IN 1 .. cardinality(v_ids) LOOP
        UPDATE {s}.accounts a SET available = v_av[i], reserved = v_re[i], spent = v_sp[i]
        WHERE a.id = v_ids[i] AND (a.available, a.reserved, a.spent) IS DISTINCT FROM (v_av[i], v_re[i], v_sp[i]);
    END LOOP;
END
$fn$;
"""

_ACCOUNT = "SELECT id, kind, available, reserved, spent, owner, created_at FROM {s}.accounts"
_RESERVATION = "SELECT request_id, account_id, amount, status, charged, created_at, expires_at, agent FROM {s}.reservations"

_EXPIRE = """
WITH expired AS (
    UPDATE {s}.reservations SET status = 'expired', closed_at = $1
    WHERE status = 'held' AND expires_at < $1 {filter}
    RETURNING account_id, amount
), sums AS (
    SELECT account_id, SUM(amount)::BIGINT AS total FROM expired GROUP BY account_id
)
UPDATE {s}.accounts a SET available = a.available + sums.total, reserved = a.reserved - sums.total
FROM sums WHERE a.id = sums.account_id
RETURNING sums.total
"""

def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = urllib.parse.urlsplit(dsn)
    except ValueError:
        return "<unparsable dsn>"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


async def _within(conn: Any, fn: Callable[[Any], Awaitable[T]], transaction: bool) -> T:
    """``fn(conn)``, in a transaction of its own if ``transaction``."""
    if not transaction:
        return await fn(conn)
    async with conn.transaction():
        return await fn(conn)


async def _keep_session(conn: Any) -> None:
    """The pool's reset: nothing. The ledger changes no session state (no SET, LISTEN or
    session advisory locks), and asyncpg still rolls back an unfinished transaction; the
    default reset would cost a round trip per operation."""


class PostgresLedger(Ledger):
    """The ledger in PostgreSQL (``schema`` created on first start).

    :param dsn: ``postgresql://user:pass@host:5432/db``.
    :param schema: the schema holding the tables.
    :param pool_size: the most connections this process opens.
    :param timeout: seconds for one operation (connecting included) before a 503.
    """

    backend = "postgres"

    def __init__(
        self, dsn: str, *, schema: str = "robutler_payments", pool_size: int = 10, timeout: float = 10.0,
        clock: Callable[[], float] = time.time, heartbeat_interval: float = HEARTBEAT_INTERVAL,
        owner_timeout: float = OWNER_TIMEOUT,
    ) -> None:
        super().__init__(clock, heartbeat_interval=heartbeat_interval, owner_timeout=owner_timeout)
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: Any = None
        self._open_lock = asyncio.Lock()
        self._batcher: GroupCommit[_Op] | None = None
        #: The pool's connection the batches keep (see :meth:`_run`'s ``held``).
        self._held: Any = None
        s = f'"{schema}"'
        self._sql = {
            "account": _ACCOUNT.format(s=s) + " WHERE id = $1",
            "reservation": _RESERVATION.format(s=s) + " WHERE request_id = $1",
            "expire_all": _EXPIRE.format(s=s, filter=""),
            "expire_one": _EXPIRE.format(s=s, filter="AND account_id = $2"),
            "batch": f"SELECT * FROM {s}.apply_ops($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            "one": f"SELECT * FROM {s}.ledger_op($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            "schema": SCHEMA.format(s=s, batch_signature=_BATCH_SIGNATURE),
            "s": s,
        }

    def describe(self) -> str:
        return f"postgres {redact(self.dsn)} schema {self.schema}"

    # -- plumbing --------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"the payments ledger ({self.describe()}) is unavailable: {type(exc).__name__}: {exc}; "
            f"check that PostgreSQL is running and skills.payments.dsn (plugins.payments.dsn for the CLI)",
            plugin="payments",
        )

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._pool is None:
                import asyncpg

                pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self.pool_size, command_timeout=self.timeout,
                    reset=_keep_session,
                )
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        # One creator at a time: concurrent CREATE ... IF NOT EXISTS can collide.
                        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"robutler-payments:{self.schema}")
                        await conn.execute(self._sql["schema"])
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
        return self._pool

    async def _run(self, fn: Callable[[Any], Awaitable[T]], *, transaction: bool = True, held: bool = False) -> T:
        """``fn(conn)`` within the timeout, in a transaction unless told otherwise, retried
        on a deadlock; a lost connection or database is :class:`ServiceUnavailable`.

        ``held``: on the connection the batches keep instead of one from the pool. The group
        commit's writer runs one batch at a time, so one connection serves them all without
        a pool acquire and release each (together 130-170 µs of CPU and 300 µs of wall time
        per batch, measured), which at one request at a time is a batch per operation and
        under load a batch per few operations (the commit's round trip is when they queue).
        A pool of one connection keeps none: the other operations need it."""
        import asyncpg

        retryable = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
        unavailable = (
            OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
            asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,  # the server restarted mid-transaction
            asyncpg.InvalidCatalogNameError, asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError,
        )
        for attempt in range(3):
            try:
                async with asyncio.timeout(self.timeout):
                    pool = await self._get_pool()
                    if held and self.pool_size > 1:
                        if self._held is None:
                            self._held = await pool.acquire()
                        return await _within(self._held, fn, transaction)
                    async with pool.acquire() as conn:
                        return await _within(conn, fn, transaction)
            except retryable:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
            except asyncio.CancelledError:
                if held:  # perhaps mid-statement: the pool's release waits for its cancellation
                    await self._let_go()
                raise
            except unavailable as exc:
                if held:  # broken, or timed out mid-statement: the pool's release deals with it
                    await self._let_go()
                raise self._unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def _let_go(self) -> None:
        """Give the batches' connection back to the pool. The pool's release waits for a
        cancelled statement's cancellation (so a batch that timed out while waiting for a lock
        commits nothing), and closes a broken connection; the next batch takes another."""
        conn, self._held = self._held, None
        if conn is not None and self._pool is not None:
            with contextlib.suppress(Exception):  # closed with the pool: nothing to give back
                await self._pool.release(conn)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        await self.start_owner()
        await self.expire()

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        await self._let_go()
        if self._pool is not None:
            await self.stop_owner()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> str:
        await self._run(lambda conn: conn.fetchval("SELECT 1"), transaction=False)
        return self.describe()

    async def drop_schema(self) -> None:
        """Drop the ledger's schema and everything in it (tests, and uninstalling)."""
        await self._run(lambda conn: conn.execute(f"DROP SCHEMA IF EXISTS {self._sql['s']} CASCADE"))

    # -- accounts --------------------------------------------------------------------------

    async def _account(self, conn: Any, account_id: str) -> Account | None:
        row = await conn.fetchrow(self._sql["account"], account_id)
        return Account(*row) if row else None

    async def _txn(
        self, conn: Any, account_id: str, kind: str, amount: int, request_id: str | None = None, detail: str | None = None
    ) -> None:
        await conn.execute(
            f"INSERT INTO {self._sql['s']}.transactions (account_id, kind, amount, request_id, detail, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, kind) DO NOTHING",
            account_id, kind, amount, request_id, detail, self.clock(),
        )

    async def _insert_account(
        self, conn: Any, account_id: str, kind: str, balance: int, token_hash: str | None, owner: str | None
    ) -> None:
        status = await conn.execute(
            f"INSERT INTO {self._sql['s']}.accounts (id, kind, available, token_hash, owner, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            account_id, kind, balance, token_hash, owner, self.clock(),
        )
        if status.endswith(" 0"):
            raise AccountExists(f"account {account_id!r} already exists")

    async def create_account(self, account_id: str, balance: int = 0) -> Account:
        async def op(conn: Any) -> Account:
            await self._insert_account(conn, account_id, USER, balance, None, None)
            if balance:
                await self._txn(conn, account_id, TOPUP, balance, detail="opening balance")
            account = await self._account(conn, account_id)
            assert account is not None
            return account

        return await self._run(op)

    async def create_token(self, token_id: str, token_hash: str, balance: int, owner: str | None = None) -> Account:
        s = self._sql["s"]

        async def op(conn: Any) -> Account:
            if owner is not None:
                row = await conn.fetchrow(f"SELECT available, reserved FROM {s}.accounts WHERE id = $1 FOR UPDATE", owner)
                if row is None:
                    raise AccountNotFound(AccountRef(account_id=owner))
                if row["available"] < balance:
                    raise InsufficientCredits(owner, row["available"], row["reserved"], balance)
                await conn.execute(f"UPDATE {s}.accounts SET available = available - $1 WHERE id = $2", balance, owner)
            await self._insert_account(conn, token_id, TOKEN, balance, token_hash, owner)
            if owner is not None:
                ref = f"token:{token_id}"
                await self._txn(conn, owner, TRANSFER_OUT, -balance, ref, f"funds payment token {token_id}")
                await self._txn(conn, token_id, TRANSFER_IN, balance, ref, f"from account {owner}")
            elif balance:
                await self._txn(conn, token_id, TOPUP, balance, detail="opening balance")
            account = await self._account(conn, token_id)
            assert account is not None
            return account

        return await self._run(op)

    async def topup(self, account_id: str, amount: int, note: str | None = None) -> Account:
        async def op(conn: Any) -> Account:
            status = await conn.execute(
                f"UPDATE {self._sql['s']}.accounts SET available = available + $1 WHERE id = $2", amount, account_id
            )
            if status.endswith(" 0"):
                raise AccountNotFound(AccountRef(account_id=account_id))
            await self._txn(conn, account_id, TOPUP, amount, detail=note)
            account = await self._account(conn, account_id)
            assert account is not None
            return account

        return await self._run(op)

    async def account(self, account_id: str) -> Account | None:
        return await self._run(lambda conn: self._account(conn, account_id), transaction=False)

    # -- reservations ----------------------------------------------------------------------

    async def expire(self, account_id: str | None = None) -> int:
        async def op(conn: Any) -> int:
            if account_id is None:
                rows = await conn.fetch(self._sql["expire_all"], self.clock())
            else:
                rows = await conn.fetch(self._sql["expire_one"], self.clock(), account_id)
            return sum(r[0] for r in rows)

        return await self._run(op, transaction=False)

    # -- owners ----------------------------------------------------------------------------

    async def _beat(self, owner: Owner, now: float) -> None:
        s = self._sql["s"]

        async def op(conn: Any) -> None:
            await conn.execute(
                f"INSERT INTO {s}.ledger_owners (id, host, pid, started, heartbeat) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat",
                owner.id, owner.host, owner.pid, owner.started, now,
            )

        await self._run(op, transaction=False)

    async def _owners(self) -> list[Owner]:
        s = self._sql["s"]

        async def op(conn: Any) -> list[Owner]:
            rows = await conn.fetch(f"SELECT id, host, pid, started, heartbeat FROM {s}.ledger_owners")
            return [Owner(*row) for row in rows]

        return await self._run(op, transaction=False)

    async def _release_owners(self, owners: list[str], now: float, *, orphans: bool = False) -> int:
        s = self._sql["s"]
        orphan = f" OR (owner IS NOT NULL AND owner NOT IN (SELECT id FROM {s}.ledger_owners))" if orphans else ""

        async def op(conn: Any) -> int:
            rows = await conn.fetch(
                f"""
                WITH gone AS (
                    UPDATE {s}.reservations SET status = 'expired', closed_at = $1
                    WHERE status = 'held' AND (owner = ANY($2::TEXT[]){orphan})
                    RETURNING account_id, amount
                ), sums AS (
                    SELECT account_id, SUM(amount)::BIGINT AS total FROM gone GROUP BY account_id
                )
                UPDATE {s}.accounts a SET available = a.available + sums.total, reserved = a.reserved - sums.total
                FROM sums WHERE a.id = sums.account_id
                RETURNING sums.total
                """,
                now, owners,
            )
            await conn.execute(f"DELETE FROM {s}.ledger_owners WHERE id = ANY($1::TEXT[])", owners)
            return sum(r[0] for r in rows)

        return await self._run(op)

    async def reserve(
        self, ref: AccountRef, request_id: str, wanted: int, minimum: int, ttl: float, agent: str | None = None
    ) -> Reservation:
        if wanted < minimum:
            raise ValueError(f"wanted ({wanted}) is below minimum ({minimum})")
        # Queued like the others (never run by the caller itself): a caller cancelled meanwhile
        # leaves it in its place, before the release it asks for next.
        result: Reservation = await self._group().submit(_Op("r", request_id, ref, wanted, minimum, agent, ttl))
        return result

    def _group(self) -> GroupCommit[_Op]:
        if self._batcher is None:
            self._batcher = GroupCommit(self._apply)
        return self._batcher

    async def _apply(self, ops: list[_Op]) -> list[Any]:
        """Run a batch of reservations and settlements in one statement (``apply_batch``)."""
        now = self.clock()
        args = (
            [op.kind for op in ops], [op.request_id for op in ops],
            [op.ref.account_id if op.ref is not None else None for op in ops],
            [op.ref.token_hash if op.ref is not None else None for op in ops],
            [op.amount for op in ops], [op.minimum for op in ops], [op.text for op in ops],
            [op.ttl for op in ops], now, self.owner.id,
        )
        if len(ops) == 1:  # alone: an error is the statement's
            return [self._outcome(ops[0], await self._one(args, 0), now)]
        import asyncpg

        try:
            rows = await self._run(lambda conn: conn.fetch(self._sql["batch"], *args), transaction=False, held=True)
        except asyncpg.PostgresError:
            # An operation failed the whole statement (nothing of it was written): run them
            # again one by one, so that only that one fails.
            results: list[Any] = []
            for k, op in enumerate(ops):
                try:
                    results.append(self._outcome(op, await self._one(args, k), now))
                except asyncpg.PostgresError as exc:
                    results.append(exc)
            return results
        return [self._outcome(op, row, now) for op, row in zip(ops, rows, strict=True)]

    async def _one(self, args: tuple[Any, ...], k: int) -> Any:
        """Operation ``k`` of a batch's arguments, alone (``ledger_op``, its own transaction)."""
        return await self._run(
            lambda conn: conn.fetchrow(self._sql["one"], *[a[k] for a in args[:8]], *args[8:]), transaction=False,
            held=True,
        )

    @staticmethod
    def _outcome(op: _Op, row: Any, now: float) -> Any:
        outcome, account_id, amount, charged, available, reserved, holds, until, state, message = row
        if outcome == "error":
            import asyncpg

            return asyncpg.PostgresError.new({"C": state, "M": message, "S": "ERROR"})
        if op.kind == "r":
            assert op.ref is not None
            if outcome == "missing":
                return AccountNotFound(op.ref)
            if outcome == "short":
                return InsufficientCredits(account_id, available, reserved, op.minimum, until, holds)
            return Reservation(op.request_id, account_id, amount, HELD, 0, now, now + op.ttl, op.text)
        if outcome == "unknown":
            return UnknownReservation(f"no reservation for request {op.request_id!r}")
        if outcome == "already":
            return Settlement(op.request_id, account_id, charged, 0, already=True)
        if outcome == "late":
            _, _, capped = split(op.amount, available)
            return Settlement(op.request_id, account_id, charged, 0, capped=capped, late=True)
        _, _, capped = split(op.amount, amount)
        return Settlement(op.request_id, account_id, charged, amount - charged, capped=capped)

    async def settle(self, request_id: str, cost: int, detail: str | None = None) -> Settlement:
        # Queued with keep: a caller cancelled mid-settlement (client gone) does not withdraw
        # it; it runs to the end, as it does in the SQLite worker.
        result: Settlement = await self._group().submit(_Op("s", request_id, None, cost, 0, detail, 0.0), keep=True)
        return result

    async def release(self, request_id: str) -> Settlement:
        result: Settlement = await self._group().submit(_Op("x", request_id, None, 0, 0, None, 0.0), keep=True)
        return result

    async def reservation(self, request_id: str) -> Reservation | None:
        async def op(conn: Any) -> Reservation | None:
            row = await conn.fetchrow(self._sql["reservation"], request_id)
            return Reservation(*row) if row else None

        return await self._run(op, transaction=False)

    async def transactions(self, account_id: str, limit: int = 20) -> list[Transaction]:
        async def op(conn: Any) -> list[Transaction]:
            rows = await conn.fetch(
                f"SELECT id, account_id, kind, amount, request_id, detail, created_at FROM {self._sql['s']}.transactions "
                "WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
                account_id, limit,
            )
            return [Transaction(*r) for r in rows]

        return await self._run(op, transaction=False)


__all__ = ["PostgresLedger", "redact"]

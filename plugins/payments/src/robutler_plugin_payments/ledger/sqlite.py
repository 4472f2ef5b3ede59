"""The embedded ledger: SQLite through the standard library, in one worker thread.

Every operation runs inside a ``BEGIN IMMEDIATE`` transaction (it takes the database's
write lock at once, so a read-then-update cannot interleave with another writer, in this
process or another one on the same file). One worker thread per ledger owns the
connection and groups the operations queued meanwhile into one commit
(:mod:`.sqlite_worker`). When this ledger holds no other request's reservation and the
worker is idle, an operation runs at once on the event loop's thread instead, on a
connection that never waits for a lock (it queues if the write lock is taken) nor
checkpoints: the event loop never waits for SQLite. WAL mode and ``busy_timeout`` let
several processes share the file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from robutler_specs import ServiceUnavailable

from .base import (
    CHARGE,
    EXPIRED,
    HEARTBEAT_INTERVAL,
    HELD,
    OWNER_TIMEOUT,
    RELEASED,
    SETTLED,
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
from .sqlite_worker import GroupCommitWorker

T = TypeVar("T")

#: Open reservations a ledger keeps track of (to tell whether an operation is alone).
MAX_TRACKED = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'token')),
    available INTEGER NOT NULL CHECK (available >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    spent INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
    token_hash TEXT UNIQUE,
    owner TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    request_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    amount INTEGER NOT NULL CHECK (amount >= 0),
    status TEXT NOT NULL CHECK (status IN ('held', 'settled', 'released', 'expired')),
    charged INTEGER NOT NULL DEFAULT 0 CHECK (charged >= 0),
    agent TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    closed_at REAL
);
CREATE INDEX IF NOT EXISTS reservations_held ON reservations (account_id, expires_at) WHERE status = 'held';
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    kind TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'transfer_in', 'transfer_out')),
    amount INTEGER NOT NULL,
    request_id TEXT,
    detail TEXT,
    created_at REAL NOT NULL,
    UNIQUE (request_id, kind)
);
CREATE INDEX IF NOT EXISTS transactions_account ON transactions (account_id, id);
CREATE TABLE IF NOT EXISTS ledger_owners (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL
);
INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('schema_version', '1');
"""

#: Version 2: reservations name their owner (a ledger of version 1 gains the column).
MIGRATE_2 = "ALTER TABLE reservations ADD COLUMN owner TEXT"
FINISH_2 = """
CREATE INDEX IF NOT EXISTS reservations_owner ON reservations (owner) WHERE status = 'held';
UPDATE ledger_meta SET value = '2' WHERE key = 'schema_version' AND value < '2';
"""

_ACCOUNT = "SELECT id, kind, available, reserved, spent, owner, created_at FROM accounts"
_HOLDS_EXPIRED = (
    "EXISTS (SELECT 1 FROM reservations r WHERE r.account_id = accounts.id AND r.status = 'held' "
    "AND r.expires_at < ?)"
)
_RESERVE_BY_ID = f"SELECT id, available, reserved, {_HOLDS_EXPIRED} FROM accounts WHERE id = ? AND kind = 'user'"
_RESERVE_BY_TOKEN = f"SELECT id, available, reserved, {_HOLDS_EXPIRED} FROM accounts WHERE token_hash = ?"
_RESERVATION = (
    "SELECT request_id, account_id, amount, status, charged, created_at, expires_at, agent FROM reservations"
)


class SQLiteLedger(Ledger):
    """The ledger in a SQLite file.

    :param path: the database file (created with its directory if missing).
    :param timeout: seconds to wait for another process's write lock.
    """

    backend = "sqlite"

    def __init__(self, path: str, *, timeout: float = 10.0, clock: Callable[[], float] = time.time,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, owner_timeout: float = OWNER_TIMEOUT) -> None:
        super().__init__(clock, heartbeat_interval=heartbeat_interval, owner_timeout=owner_timeout)
        self.path = path
        self.timeout = timeout
        self._worker: GroupCommitWorker | None = None
        #: Requests whose reservation this ledger made and has not closed, and operations
        #: under way: while there is none besides the caller's, it would be alone in its batch.
        self._holding: set[str] = set()
        self._callers = 0

    def describe(self) -> str:
        return f"sqlite file {self.path}"

    # -- plumbing --------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"the payments ledger ({self.describe()}) is unavailable: {type(exc).__name__}: {exc}; "
            f"check skills.payments.path (and plugins.payments.path for the CLI)",
            plugin="payments",
        )

    def _connect(self) -> sqlite3.Connection:
        """Open the file (in the worker thread) and create the schema if needed."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: commits are not synced one by one, the WAL is at checkpoints;
            # a power cut may lose the last commits but never corrupts the ledger.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.executescript(SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(reservations)")}
            if "owner" not in columns:
                conn.execute("BEGIN IMMEDIATE")
                try:  # another process may have migrated it meanwhile
                    if "owner" not in {row[1] for row in conn.execute("PRAGMA table_info(reservations)")}:
                        conn.execute(MIGRATE_2)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            conn.executescript(FINISH_2)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_direct(self) -> sqlite3.Connection:
        """The connection of the worker's direct path (opened after :meth:`_connect`): it
        fails at once on a held write lock, and leaves checkpoints to the worker."""
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction: at once when no other request is
        in flight and the worker is idle, else in the worker thread, grouped with whatever
        else is queued (:mod:`.sqlite_worker`)."""
        if self._worker is None:
            self._worker = GroupCommitWorker(self._connect, connect_direct=self._connect_direct)
        self._callers += 1
        try:
            result: T = await self._worker.run(fn, alone=self._callers == 1 and not self._holding)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a bug, not an outage: a 500 that names the plugin
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        except OSError as exc:
            raise self._unavailable(exc) from exc
        finally:
            self._callers -= 1
        return result

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        await self.start_owner()
        await self.expire()

    async def close(self) -> None:
        await self.stop_owner()
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.close()

    async def ping(self) -> str:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())
        return self.describe()

    # -- accounts --------------------------------------------------------------------------

    @staticmethod
    def _account(conn: sqlite3.Connection, account_id: str) -> Account | None:
        row = conn.execute(f"{_ACCOUNT} WHERE id = ?", (account_id,)).fetchone()
        return Account(*row) if row else None

    def _txn(
        self, conn: sqlite3.Connection, account_id: str, kind: str, amount: int,
        request_id: str | None = None, detail: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO transactions (account_id, kind, amount, request_id, detail, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, kind) DO NOTHING",
            (account_id, kind, amount, request_id, detail, self.clock()),
        )

    async def create_account(self, account_id: str, balance: int = 0) -> Account:
        def op(conn: sqlite3.Connection) -> Account:
            if self._account(conn, account_id) is not None:
                raise AccountExists(f"account {account_id!r} already exists")
            conn.execute(
                "INSERT INTO accounts (id, kind, available, created_at) VALUES (?, ?, ?, ?)",
                (account_id, USER, balance, self.clock()),
            )
            if balance:
                self._txn(conn, account_id, TOPUP, balance, detail="opening balance")
            account = self._account(conn, account_id)
            assert account is not None
            return account

        return await self._run(op)

    async def create_token(self, token_id: str, token_hash: str, balance: int, owner: str | None = None) -> Account:
        def op(conn: sqlite3.Connection) -> Account:
            if self._account(conn, token_id) is not None:
                raise AccountExists(f"account {token_id!r} already exists")
            if owner is not None:
                source = self._account(conn, owner)
                if source is None:
                    raise AccountNotFound(AccountRef(account_id=owner))
                if source.available < balance:
                    raise InsufficientCredits(owner, source.available, source.reserved, balance)
                conn.execute("UPDATE accounts SET available = available - ? WHERE id = ?", (balance, owner))
                self._txn(conn, owner, TRANSFER_OUT, -balance, f"token:{token_id}", f"funds payment token {token_id}")
            conn.execute(
                "INSERT INTO accounts (id, kind, available, token_hash, owner, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, TOKEN, balance, token_hash, owner, self.clock()),
            )
            if owner is not None:
                self._txn(conn, token_id, TRANSFER_IN, balance, f"token:{token_id}", f"from account {owner}")
            elif balance:
                self._txn(conn, token_id, TOPUP, balance, detail="opening balance")
            account = self._account(conn, token_id)
            assert account is not None
            return account

        return await self._run(op)

    async def topup(self, account_id: str, amount: int, note: str | None = None) -> Account:
        def op(conn: sqlite3.Connection) -> Account:
            if conn.execute("UPDATE accounts SET available = available + ? WHERE id = ?", (amount, account_id)).rowcount == 0:
                raise AccountNotFound(AccountRef(account_id=account_id))
            self._txn(conn, account_id, TOPUP, amount, detail=note)
            account = self._account(conn, account_id)
            assert account is not None
            return account

        return await self._run(op)

    async def account(self, account_id: str) -> Account | None:
        return await self._run(lambda conn: self._account(conn, account_id))

    # -- reservations ----------------------------------------------------------------------

    def _expire(self, conn: sqlite3.Connection, account_id: str | None, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        where = "status = 'held' AND expires_at < ?"
        args: list[object] = [now]
        if account_id is not None:
            where, args = "account_id = ? AND " + where, [account_id, now]
        rows = conn.execute(
            f"SELECT account_id, SUM(amount) FROM reservations WHERE {where} GROUP BY account_id", args
        ).fetchall()
        if not rows:
            return 0
        conn.execute(f"UPDATE reservations SET status = '{EXPIRED}', closed_at = ? WHERE {where}", [now, *args])
        for owner, total in rows:
            conn.execute(
                "UPDATE accounts SET available = available + ?, reserved = reserved - ? WHERE id = ?",
                (total, total, owner),
            )
        return sum(total for _, total in rows)

    async def expire(self, account_id: str | None = None) -> int:
        return await self._run(lambda conn: self._expire(conn, account_id))

    # -- owners ----------------------------------------------------------------------------

    async def _beat(self, owner: Owner, now: float) -> None:
        await self._run(lambda conn: conn.execute(
            "INSERT INTO ledger_owners (id, host, pid, started, heartbeat) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat",
            (owner.id, owner.host, owner.pid, owner.started, now),
        ))

    async def _owners(self) -> list[Owner]:
        rows = await self._run(lambda conn: conn.execute(
            "SELECT id, host, pid, started, heartbeat FROM ledger_owners").fetchall())
        return [Owner(*row) for row in rows]

    async def _release_owners(self, owners: list[str], now: float, *, orphans: bool = False) -> int:
        def op(conn: sqlite3.Connection) -> int:
            marks = ", ".join("?" * len(owners))
            where = f"status = 'held' AND (owner IN ({marks})"
            if orphans:
                where += " OR (owner IS NOT NULL AND owner NOT IN (SELECT id FROM ledger_owners))"
            where += ")"
            rows = conn.execute(
                f"SELECT account_id, SUM(amount) FROM reservations WHERE {where} GROUP BY account_id", owners
            ).fetchall()
            conn.execute(f"UPDATE reservations SET status = '{EXPIRED}', closed_at = ? WHERE {where}", [now, *owners])
            for account_id, total in rows:
                conn.execute(
                    "UPDATE accounts SET available = available + ?, reserved = reserved - ? WHERE id = ?",
                    (total, total, account_id),
                )
            conn.execute(f"DELETE FROM ledger_owners WHERE id IN ({marks})", owners)
            return sum(total for _, total in rows)

        return await self._run(op)

    async def reserve(
        self, ref: AccountRef, request_id: str, wanted: int, minimum: int, ttl: float, agent: str | None = None
    ) -> Reservation:
        if wanted < minimum:
            raise ValueError(f"wanted ({wanted}) is below minimum ({minimum})")

        # A caller's identity pays from a user account only, never from a token's.
        sql, key = (_RESERVE_BY_ID, ref.account_id) if ref.account_id is not None else (_RESERVE_BY_TOKEN, ref.token_hash)

        def op(conn: sqlite3.Connection) -> Reservation | InsufficientCredits:
            now = self.clock()
            # One statement finds the account and whether it has expired holds to release.
            row = conn.execute(sql, (now, key)).fetchone()
            if row is None:
                raise AccountNotFound(ref)
            account_id, available, reserved, stale = row
            if stale:
                self._expire(conn, account_id, now)
                available, reserved = conn.execute(
                    "SELECT available, reserved FROM accounts WHERE id = ?", (account_id,)
                ).fetchone()
            if available < minimum:
                # Returned, not raised: the expired holds released above stay released.
                holds, until = conn.execute(
                    "SELECT COUNT(*), MAX(expires_at) FROM reservations WHERE account_id = ? AND status = 'held'",
                    (account_id,),
                ).fetchone()
                return InsufficientCredits(account_id, available, reserved, minimum, until, holds)
            amount = min(wanted, available)
            # The WHERE clause is the guard; under the write lock it always holds here.
            conn.execute(
                "UPDATE accounts SET available = available - ?, reserved = reserved + ? "
                "WHERE id = ? AND available >= ?",
                (amount, amount, account_id, amount),
            )
            conn.execute(
                "INSERT INTO reservations (request_id, account_id, amount, status, agent, created_at, expires_at, "
                "owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (request_id, account_id, amount, HELD, agent, now, now + ttl, self.owner.id),
            )
            return Reservation(request_id, account_id, amount, HELD, 0, now, now + ttl, agent)

        result = await self._run(op)
        if isinstance(result, InsufficientCredits):
            raise result
        if len(self._holding) >= MAX_TRACKED:
            self._holding.clear()  # lost track (closed by another process?): start over
        self._holding.add(request_id)
        return result

    def _close(self, conn: sqlite3.Connection, request_id: str, cost: int, detail: str | None, charge: bool) -> Settlement:
        row = conn.execute(
            "SELECT account_id, amount, status, charged FROM reservations WHERE request_id = ?", (request_id,)
        ).fetchone()
        if row is None:
            raise UnknownReservation(f"no reservation for request {request_id!r}")
        account_id, amount, status, charged_before = row
        if status in (SETTLED, RELEASED):
            return Settlement(request_id, account_id, charged_before, 0, already=True)
        now = self.clock()
        late = status == EXPIRED
        if not late:
            charged, released, capped = split(cost if charge else 0, amount)
            conn.execute(
                "UPDATE accounts SET reserved = reserved - ?, available = available + ?, spent = spent + ? "
                "WHERE id = ?",
                (amount, released, charged, account_id),
            )
        else:
            # The reservation was given back already; charge what is there now.
            available = conn.execute("SELECT available FROM accounts WHERE id = ?", (account_id,)).fetchone()[0]
            charged, _, capped = split(cost if charge else 0, available)
            released = 0
            conn.execute(
                "UPDATE accounts SET available = available - ?, spent = spent + ? WHERE id = ?",
                (charged, charged, account_id),
            )
        new_status = SETTLED if charge else RELEASED
        conn.execute(
            "UPDATE reservations SET status = ?, charged = ?, closed_at = ? WHERE request_id = ?",
            (new_status, charged, now, request_id),
        )
        if charge:
            self._txn(conn, account_id, CHARGE, -charged, request_id, detail)
        return Settlement(request_id, account_id, charged, released, capped=capped, late=late)

    async def settle(self, request_id: str, cost: int, detail: str | None = None) -> Settlement:
        self._holding.discard(request_id)
        return await self._run(lambda conn: self._close(conn, request_id, cost, detail, True))

    async def release(self, request_id: str) -> Settlement:
        self._holding.discard(request_id)
        return await self._run(lambda conn: self._close(conn, request_id, 0, None, False))

    async def reservation(self, request_id: str) -> Reservation | None:
        def op(conn: sqlite3.Connection) -> Reservation | None:
            row = conn.execute(f"{_RESERVATION} WHERE request_id = ?", (request_id,)).fetchone()
            return Reservation(*row) if row else None

        return await self._run(op)

    async def transactions(self, account_id: str, limit: int = 20) -> list[Transaction]:
        def op(conn: sqlite3.Connection) -> list[Transaction]:
            rows = conn.execute(
                "SELECT id, account_id, kind, amount, request_id, detail, created_at FROM transactions "
                "WHERE account_id = ? ORDER BY id DESC LIMIT ?",
                (account_id, limit),
            ).fetchall()
            return [Transaction(*r) for r in rows]

        return await self._run(op)


__all__ = ["SQLiteLedger"]

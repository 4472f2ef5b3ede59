"""The ledger contract, its records and errors, shared by the SQLite and PostgreSQL backends.

Design (``docs/plugins/payments.md`` has the long version):

* ``accounts``: one row per account (a user, or a prepaid payment token) with three
  integer micro-credit columns, ``available`` (may be reserved), ``reserved`` (held by
  requests in flight) and ``spent``; none may go negative (CHECK constraints). Credits
  only enter through top-ups and transfers, so ``available + reserved + spent`` equals
  what was credited to the account.
* ``reservations``: one row per request id (the primary key) with its amount, status
  (``held`` -> ``settled`` | ``released`` | ``expired``) and expiry time.
* ``transactions``: the audit trail (top-ups, transfers, one ``charge`` per settled
  request). ``UNIQUE (request_id, kind)``: a request is never charged twice.

Reserving moves credits ``available -> reserved`` in one locked, conditional update;
settling moves ``reserved -> spent`` (what the request cost, at most the reservation)
and ``reserved -> available`` (the rest) in one transaction, and does nothing the second
time. Expired reservations go back to ``available`` lazily (on the next reservation of
that account) and in a sweep when a ledger opens.

Nothing is held by the dead: every open ledger (one per process and ledger) is an *owner*
(``ledger_owners``: a random id, the host, the pid and its start time, a heartbeat written
every ``heartbeat_interval`` seconds), and each reservation names its owner. An owner is
dead when it is on this host (same machine and PID namespace) and its process is gone (or
the pid now belongs to a process started at another time), or, from anywhere, when its
heartbeat is older than ``owner_timeout``. A ledger that opens, and every heartbeat after,
releases the held reservations of dead owners (status ``expired``, as a TTL would) and
forgets them. A server restarted on the same host therefore frees what its killed
predecessor held at once; a replica elsewhere (another container) within ``owner_timeout``.
A live replica's reservations are never touched: its process is alive, or its heartbeat is
fresh. One whose heartbeat stalled longer than ``owner_timeout`` while it lived (a frozen
process, a partition) is taken for dead; its settlements then arrive *late*, which the
ledger already handles (charged from ``available``, never twice): nothing is lost.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psutil

log = logging.getLogger("robutler.payments")

#: Seconds between an owner's heartbeats (and sweeps for dead owners).
HEARTBEAT_INTERVAL = 10.0
#: Seconds without a heartbeat after which an owner on another host is taken for dead.
OWNER_TIMEOUT = 60.0

#: Reservation states.
HELD, SETTLED, RELEASED, EXPIRED = "held", "settled", "released", "expired"
#: Transaction kinds.
TOPUP, CHARGE, TRANSFER_IN, TRANSFER_OUT = "topup", "charge", "transfer_in", "transfer_out"
#: Account kinds.
USER, TOKEN = "user", "token"


def hash_token(token: str) -> str:
    """The stored form of a payment token: its SHA-256, hex (tokens are random, so a
    plain hash is enough; the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def host_identity() -> str:
    """Where this process's pids mean something: the host name, the machine's boot id and
    the PID namespace (two containers on one machine, or one restarted, differ)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return "|".join((socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), namespace))


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or ``None`` if there is none."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@dataclass(frozen=True)
class Owner:
    """A process holding reservations: what ``ledger_owners`` keeps of it.

    :ivar id: random, one per open ledger.
    :ivar host: :func:`host_identity` of its process.
    :ivar pid: its process id.
    :ivar started: when its process started (to tell a reused pid from it).
    :ivar heartbeat: its last heartbeat (the ledger's clock).
    """

    id: str
    host: str
    pid: int
    started: float
    heartbeat: float = 0.0

    def dead(self, me: Owner, now: float, timeout: float) -> bool:
        """Whether this owner is gone, as ``me`` sees it at ``now`` (see the module docstring)."""
        if self.id == me.id:
            return False
        if self.host == me.host:
            started = process_started(self.pid)
            return started is None or abs(started - self.started) > 1.0
        return now - self.heartbeat > timeout


@dataclass(frozen=True)
class AccountRef:
    """How a request names the account it pays from: an account id, or a payment token."""

    account_id: str | None = None
    token_hash: str | None = None

    def __post_init__(self) -> None:
        if (self.account_id is None) == (self.token_hash is None):
            raise ValueError("an AccountRef names exactly one of account_id and token_hash")

    def describe(self) -> str:
        """How to name this account in a message."""
        return f"account {self.account_id!r}" if self.account_id is not None else "the payment token"


@dataclass(frozen=True)
class Account:
    """An account's state; amounts in micro-credits."""

    id: str
    kind: str
    available: int
    reserved: int
    spent: int
    owner: str | None
    created_at: float


@dataclass(frozen=True)
class Reservation:
    """A reservation as stored; amounts in micro-credits."""

    request_id: str
    account_id: str
    amount: int
    status: str
    charged: int
    created_at: float
    expires_at: float
    agent: str | None = None


@dataclass(frozen=True)
class Settlement:
    """What settling a reservation did.

    :ivar charged: micro-credits charged (moved to ``spent``).
    :ivar released: micro-credits given back to ``available``.
    :ivar capped: the cost asked was more than could be charged.
    :ivar already: the reservation had been settled (or released) before: nothing changed;
        ``charged`` is what the first settlement charged.
    :ivar late: the reservation had expired; the charge came from ``available``.
    """

    request_id: str
    account_id: str
    charged: int
    released: int
    capped: bool = False
    already: bool = False
    late: bool = False


@dataclass(frozen=True)
class Transaction:
    """One line of an account's history. ``amount`` is signed (a charge is negative)."""

    id: int
    account_id: str
    kind: str
    amount: int
    request_id: str | None
    detail: str | None
    created_at: float


class LedgerError(Exception):
    """A ledger operation could not be done; the message says why and what to do."""


class AccountNotFound(LedgerError):
    """No account with that id (or no payment token with that hash)."""

    def __init__(self, ref: AccountRef) -> None:
        super().__init__(f"no such {ref.describe()}")
        self.ref = ref


class AccountExists(LedgerError):
    """An account with that id already exists."""


class InsufficientCredits(LedgerError):
    """The account cannot pay: ``available`` is below what was needed (micro-credits).

    :ivar held_until: when the last of the account's held reservations expires at the
        latest (``None``: none is held); each is freed sooner when its request ends.
    :ivar holds: how many reservations hold the ``reserved`` credits.
    """

    def __init__(self, account_id: str, available: int, reserved: int, needed: int,
                 held_until: float | None = None, holds: int = 0) -> None:
        super().__init__(f"account {account_id!r} has {available} micro-credits available, needs {needed}")
        self.account_id = account_id
        self.available = available
        self.reserved = reserved
        self.needed = needed
        self.held_until = held_until
        self.holds = holds


class UnknownReservation(LedgerError):
    """No reservation with that request id."""


def split(cost: int, amount: int) -> tuple[int, int, bool]:
    """Settling ``cost`` against a reservation of ``amount``: (charged, released, capped).

    The charge is capped at the reservation: the price checks of the skill keep a
    request within it, so going over means an estimate was off, which is logged.
    """
    charged = min(max(cost, 0), amount)
    return charged, amount - charged, cost > amount


class Ledger(abc.ABC):
    """The operations every ledger backend provides. Amounts are micro-credits.

    :param clock: the time source (seconds since the epoch); tests inject their own.
    """

    #: ``sqlite`` or ``postgres``.
    backend: str = ""

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, owner_timeout: float = OWNER_TIMEOUT) -> None:
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.owner_timeout = owner_timeout
        pid = os.getpid()
        #: This ledger as an owner of reservations.
        self.owner = Owner(uuid.uuid4().hex, host_identity(), pid, process_started(pid) or time.time())
        self._heart: asyncio.Task[None] | None = None

    # -- owners ----------------------------------------------------------------------------

    async def start_owner(self) -> None:
        """Register this owner, release what dead owners held, and keep a heartbeat (once
        per ledger; :meth:`open` calls it)."""
        await self._beat(self.owner, self.clock())
        await self.release_dead()
        if self._heart is None or self._heart.done():
            self._heart = asyncio.create_task(self._heartbeat(), name="payments-ledger-heartbeat")

    async def stop_owner(self) -> None:
        """Stop the heartbeat, release what this owner still holds, forget it (:meth:`close`)."""
        heart, self._heart = self._heart, None
        if heart is None:
            return
        heart.cancel()
        await asyncio.gather(heart, return_exceptions=True)
        try:
            freed = await self._release_owners([self.owner.id], self.clock())
        except Exception as exc:  # the ledger is down: the others' sweeps will do it
            log.warning("payments ledger %s: could not release this process's reservations on close: %s",
                        self.describe(), exc)
            return
        if freed:
            log.warning("payments ledger %s: released %d micro-credits still held by this process "
                        "as it closed", self.describe(), freed)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._beat(self.owner, self.clock())
                await self.release_dead()
            except Exception as exc:  # an outage: beat again next time
                log.warning("payments ledger %s: heartbeat failed: %s", self.describe(), exc)

    async def release_dead(self) -> int:
        """Release the held reservations of dead owners (and of owners no longer listed)
        and forget those owners; returns the micro-credits freed."""
        now = self.clock()
        dead = [o.id for o in await self._owners() if o.dead(self.owner, now, self.owner_timeout)]
        freed = await self._release_owners(dead, now, orphans=True)
        if freed:
            log.warning("payments ledger %s: released %d micro-credits held by %d stopped process(es)",
                        self.describe(), freed, len(dead))
        return freed

    @abc.abstractmethod
    async def _beat(self, owner: Owner, now: float) -> None:
        """Insert or refresh ``owner``'s row with ``now`` as its heartbeat."""

    @abc.abstractmethod
    async def _owners(self) -> list[Owner]:
        """Every owner row."""

    @abc.abstractmethod
    async def _release_owners(self, owners: list[str], now: float, *, orphans: bool = False) -> int:
        """In one transaction: expire the held reservations of ``owners`` (and with
        ``orphans``, of owners that have no row), give their credits back, delete the
        owners' rows; returns the micro-credits freed."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the ledger is, for messages (no passwords)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create the schema if needed, and release expired reservations."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections."""

    @abc.abstractmethod
    async def ping(self) -> str:
        """Check the backend answers; returns :meth:`describe`."""

    @abc.abstractmethod
    async def create_account(self, account_id: str, balance: int = 0) -> Account:
        """Create a user account with an opening balance (recorded as a top-up).

        :raises AccountExists: when the id is taken.
        """

    @abc.abstractmethod
    async def create_token(self, token_id: str, token_hash: str, balance: int, owner: str | None = None) -> Account:
        """Create a payment-token account. With ``owner``, its balance is moved from that
        account (``transfer_out`` / ``transfer_in``); without, it is minted (``topup``).

        :raises AccountNotFound: the owner does not exist.
        :raises InsufficientCredits: the owner cannot fund it.
        """

    @abc.abstractmethod
    async def topup(self, account_id: str, amount: int, note: str | None = None) -> Account:
        """Add credits to ``available``.

        :raises AccountNotFound: no such account.
        """

    @abc.abstractmethod
    async def account(self, account_id: str) -> Account | None:
        """An account by id, or ``None``."""

    @abc.abstractmethod
    async def reserve(
        self, ref: AccountRef, request_id: str, wanted: int, minimum: int, ttl: float, agent: str | None = None
    ) -> Reservation:
        """Hold ``min(wanted, available)`` for ``request_id``, if that is at least ``minimum``.

        Expired reservations of the account are released first. An ``account_id`` names a
        user account only: a token's balance is reachable through its hash alone. A caller
        cancelled while reserving leaves the reservation in its place in this ledger's order:
        it is made (or withdrawn, if it had not begun) before any operation asked for later,
        so a :meth:`release` that follows gives back whatever it held.

        :raises AccountNotFound: no such account or token.
        :raises InsufficientCredits: ``available < minimum``.
        """

    @abc.abstractmethod
    async def settle(self, request_id: str, cost: int, detail: str | None = None) -> Settlement:
        """Charge ``min(cost, reserved)``, release the rest, record a ``charge``.

        Idempotent: settling (or releasing) a closed reservation changes nothing. A
        reservation that expired meanwhile is charged from ``available`` (at most what
        is there), so a slow request is not free. A caller cancelled while settling does
        not cancel the settlement: it runs to the end.

        :raises UnknownReservation: no reservation with that id.
        """

    @abc.abstractmethod
    async def release(self, request_id: str) -> Settlement:
        """Give the whole reservation back without a charge (idempotent like :meth:`settle`)."""

    @abc.abstractmethod
    async def expire(self, account_id: str | None = None) -> int:
        """Release the expired reservations (of one account, or all); returns micro-credits freed."""

    @abc.abstractmethod
    async def reservation(self, request_id: str) -> Reservation | None:
        """A reservation by request id, or ``None``."""

    @abc.abstractmethod
    async def transactions(self, account_id: str, limit: int = 20) -> list[Transaction]:
        """The newest ``limit`` transactions of an account, newest first."""


__all__ = [
    "CHARGE",
    "EXPIRED",
    "HEARTBEAT_INTERVAL",
    "HELD",
    "OWNER_TIMEOUT",
    "RELEASED",
    "SETTLED",
    "TOKEN",
    "TOPUP",
    "TRANSFER_IN",
    "TRANSFER_OUT",
    "USER",
    "Account",
    "AccountExists",
    "AccountNotFound",
    "AccountRef",
    "InsufficientCredits",
    "Ledger",
    "LedgerError",
    "Owner",
    "Reservation",
    "Settlement",
    "Transaction",
    "UnknownReservation",
    "hash_token",
    "host_identity",
    "process_started",
    "split",
]

"""Ledger backends: SQLite (embedded default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import LedgerConfig
from .base import (
    Account,
    AccountExists,
    AccountNotFound,
    AccountRef,
    InsufficientCredits,
    Ledger,
    LedgerError,
    Reservation,
    Settlement,
    Transaction,
    UnknownReservation,
    hash_token,
)
from .sqlite import SQLiteLedger


def make_ledger(config: LedgerConfig, clock: Callable[[], float] = time.time) -> Ledger:
    """The ledger ``config`` describes (not opened yet)."""
    if config.backend == "postgres":
        from .postgres import PostgresLedger

        assert config.dsn is not None  # LedgerConfig checks it
        return PostgresLedger(
            config.dsn, schema=config.schema, pool_size=config.pool_size, timeout=config.timeout, clock=clock,
            heartbeat_interval=config.heartbeat_interval, owner_timeout=config.owner_timeout,
        )
    return SQLiteLedger(config.path, timeout=config.timeout, clock=clock,
                        heartbeat_interval=config.heartbeat_interval, owner_timeout=config.owner_timeout)


__all__ = [
    "Account",
    "AccountExists",
    "AccountNotFound",
    "AccountRef",
    "InsufficientCredits",
    "Ledger",
    "LedgerError",
    "Reservation",
    "SQLiteLedger",
    "Settlement",
    "Transaction",
    "UnknownReservation",
    "hash_token",
    "make_ledger",
]

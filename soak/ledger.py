"""Reading a payments ledger directly (SQLite file or PostgreSQL schema) to check it.

Conservation: every credit topped up is available, reserved or spent, and what accounts
hold as reserved is exactly what their ``held`` reservations hold.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Any

from robutler_plugin_auth import hash_key

#: The soak suite's paying caller.
KEY = "soak-key"
ACCOUNT = "soak"
SEED = 10_000 * 1_000_000  # 10,000 credits in micro-credits
PRICES = {"request_fee": "0.001", "models": {"*": {"prompt": "0.5", "completion": "1.5"}}, "default_reservation": 1}


def auth_settings() -> dict[str, Any]:
    return {"api_keys": [{"key_hash": hash_key(KEY), "user_id": ACCOUNT}]}


def payments_settings(ledger: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**ledger, **PRICES, **extra}


def seed(ledger: dict[str, Any]) -> None:
    """Create the caller's account with :data:`SEED` micro-credits, through the plugin's code."""
    import msgspec

    from robutler_plugin_payments import LedgerConfig, make_ledger

    book = make_ledger(msgspec.convert(ledger, LedgerConfig))

    async def fill() -> None:
        await book.open()
        try:
            await book.create_account(ACCOUNT, SEED)
        finally:
            await book.close()

    asyncio.run(fill())


@dataclass
class Totals:
    """The ledger's sums, in micro-credits."""

    available: int
    reserved: int
    spent: int
    held: int
    held_count: int
    topups: int
    charges: int

    def problems(self) -> list[str]:
        """What breaks conservation (an empty list: nothing)."""
        out = []
        if self.available + self.reserved + self.spent != self.topups:
            out.append(f"available {self.available} + reserved {self.reserved} + spent {self.spent} = "
                       f"{self.available + self.reserved + self.spent} != topped up {self.topups}")
        if self.reserved != self.held:
            out.append(f"accounts hold {self.reserved} reserved but held reservations sum to {self.held}")
        if self.spent != self.charges:
            out.append(f"spent {self.spent} != charge transactions {self.charges}")
        return out


_QUERIES = (
    "SELECT COALESCE(SUM(available), 0), COALESCE(SUM(reserved), 0), COALESCE(SUM(spent), 0) FROM {s}accounts",
    "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM {s}reservations WHERE status = 'held'",
    "SELECT COALESCE(SUM(CASE WHEN kind = 'topup' THEN amount ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount ELSE 0 END), 0) FROM {s}transactions",
)


def totals(ledger: dict[str, Any]) -> Totals:
    """The sums of a ledger (``ledger`` as the payments skill's settings)."""
    if ledger["backend"] == "sqlite":
        with sqlite3.connect(ledger["path"]) as conn:
            rows = [conn.execute(q.format(s="")).fetchone() for q in _QUERIES]
    else:
        import asyncpg

        async def read() -> list[Any]:
            conn = await asyncpg.connect(ledger["dsn"])
            try:
                return [await conn.fetchrow(q.format(s=ledger["schema"] + ".")) for q in _QUERIES]
            finally:
                await conn.close()

        rows = asyncio.run(read())
    (available, reserved, spent), (held, count), (topups, charges) = rows
    # The opening balance is a topup transaction too.
    return Totals(int(available), int(reserved), int(spent), int(held), int(count), int(topups), abs(int(charges)))

"""One ledger per distinct ledger setting, shared by every agent of a kernel.

Several agents usually point at the same ledger; they share one SQLite worker (so their
writes are serialised in-process instead of fighting over the file lock) or one asyncpg
pool. The shared objects live in ``kernel.state`` (the kernel's space for plugins), with
a reference count so the last agent to stop closes the ledger.
"""

from __future__ import annotations

from typing import Any

from .config import LedgerConfig
from .ledger import Ledger, make_ledger

STATE_KEY = "payments.ledgers"


def acquire_ledger(settings: LedgerConfig, state: dict[str, Any] | None) -> Ledger:
    """The ledger for ``settings``: the shared one if another agent opened it, else a new one."""
    if state is None:
        return make_ledger(settings)
    ledgers: dict[tuple[str, ...], list[Any]] = state.setdefault(STATE_KEY, {})
    entry = ledgers.get(settings.key())
    if entry is None:
        entry = ledgers[settings.key()] = [make_ledger(settings), 0]
    entry[1] += 1
    ledger: Ledger = entry[0]
    return ledger


async def release_ledger(settings: LedgerConfig, state: dict[str, Any] | None, ledger: Ledger | None = None) -> None:
    """Drop one reference; the last one closes the ledger."""
    if state is None:
        if ledger is not None:
            await ledger.close()
        return
    ledgers: dict[tuple[str, ...], list[Any]] = state.get(STATE_KEY, {})
    entry = ledgers.get(settings.key())
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del ledgers[settings.key()]
        await entry[0].close()

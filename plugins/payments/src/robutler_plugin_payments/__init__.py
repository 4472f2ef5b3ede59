"""Robutler payments: credits, prices and reserve-then-settle billing for agents.

The ``payments`` skill (requires ``auth``) reserves credits before the model runs,
refuses what the reservation cannot pay for, settles the real cost when the request
ends and reports it (``usage.cost``, ``X-Robutler-Cost``). The ledger is SQLite
(embedded default) or PostgreSQL. ``robutler-kernel payments ...`` manages it.
Documentation: ``docs/plugins/payments.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from robutler_specs import hookimpl

from . import cli
from .config import LedgerConfig, ModelPrice, PaymentsConfig
from .ledger import AccountRef, Ledger, hash_token, make_ledger
from .meter import Meter
from .skill import AMOUNT_HEADER, COST_HEADER, TOKEN_HEADER, PaymentsSkill

__all__ = [
    "AMOUNT_HEADER",
    "COST_HEADER",
    "TOKEN_HEADER",
    "AccountRef",
    "Ledger",
    "LedgerConfig",
    "Meter",
    "ModelPrice",
    "PaymentsConfig",
    "PaymentsSkill",
    "PluginSettings",
    "hash_token",
    "make_ledger",
]

#: The ``plugins.payments`` section (where the ledger is, for ``robutler-kernel payments``):
#: ``robutler-kernel check`` validates it into this Struct.
PluginSettings = LedgerConfig


@hookimpl
def robutler_skills() -> list[type[PaymentsSkill]]:
    """The payments skill."""
    return [PaymentsSkill]


@hookimpl
def robutler_commands() -> Mapping[str, Callable[[list[str], Mapping[str, Any]], int]]:
    """``robutler-kernel payments ...``."""
    return {"payments": cli.main}

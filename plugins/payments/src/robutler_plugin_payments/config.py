"""Configuration: where the ledger lives, and what this agent charges.

The ledger settings (:class:`LedgerConfig`) are read twice: from the agent's
``skills.payments`` section (the skill) and from the kernel-level ``plugins.payments``
section (the ``robutler-kernel payments`` command). Point both at the same ledger; a
YAML anchor keeps them in one place (see ``docs/plugins/payments.md``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

import msgspec

DEFAULT_SQLITE_PATH = "robutler-payments.sqlite3"
DEFAULT_SCHEMA = "robutler_payments"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class LedgerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the ledger is.

    :ivar backend: ``sqlite`` (embedded, the default) or ``postgres``.
    :ivar path: the SQLite file (relative to the working directory).
    :ivar dsn: the PostgreSQL DSN (``postgresql://user:pass@host:5432/db``); required
        with ``backend: postgres``.
    :ivar schema: the PostgreSQL schema holding the ledger tables (created on first start).
    :ivar pool_size: the most PostgreSQL connections one process opens.
    :ivar timeout: seconds one ledger operation may take before it fails with a 503.
    :ivar heartbeat_interval: seconds between this process's heartbeats in the ledger (each
        also releases what dead processes held).
    :ivar owner_timeout: seconds without a heartbeat after which a process on another host
        (another container) is taken for dead and its reservations released; a process on
        this host is checked directly (its pid). Keep it well above ``heartbeat_interval``
        and the clock skew between replicas.
    """

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = DEFAULT_SQLITE_PATH
    dsn: str | None = None
    schema: str = DEFAULT_SCHEMA
    pool_size: int = 10
    timeout: float = 10.0
    heartbeat_interval: float = 10.0
    owner_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.backend == "postgres" and not self.dsn:
            raise ValueError("backend 'postgres' needs a dsn (postgresql://user:pass@host:5432/db)")
        if not _IDENTIFIER.fullmatch(self.schema):
            raise ValueError(f"schema {self.schema!r} must be a plain SQL identifier (letters, digits, _)")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive")
        if self.owner_timeout < 2 * self.heartbeat_interval:
            raise ValueError("owner_timeout must be at least twice heartbeat_interval "
                             "(a live process must not be taken for dead between two heartbeats)")

    def ledger_settings(self) -> LedgerConfig:
        """Only the ledger part (two configs with equal settings share one ledger)."""
        return LedgerConfig(
            backend=self.backend, path=self.path, dsn=self.dsn, schema=self.schema,
            pool_size=self.pool_size, timeout=self.timeout,
            heartbeat_interval=self.heartbeat_interval, owner_timeout=self.owner_timeout,
        )

    def key(self) -> tuple[str, ...]:
        """Identifies the ledger these settings open."""
        if self.backend == "sqlite":
            return ("sqlite", self.path)
        return ("postgres", self.dsn or "", self.schema)


class ModelPrice(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The price of a model, in credits per 1,000 tokens (before markup).

    :ivar prompt: credits per 1K prompt (input) tokens.
    :ivar completion: credits per 1K completion (output) tokens.
    :ivar cache_read: credits per 1K prompt tokens the provider read from its prompt cache
        (Anthropic bills them at a tenth of ``prompt``, OpenAI at a half); default: ``prompt``.
    :ivar cache_write: credits per 1K prompt tokens written to the cache (Anthropic: 1.25x
        ``prompt``); default: ``prompt``.
    :ivar markup: this model's markup, overriding the skill's ``markup``.
    """

    prompt: Decimal = Decimal(0)
    completion: Decimal = Decimal(0)
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    markup: Decimal | None = None

    def __post_init__(self) -> None:
        prices = [self.prompt, self.completion, self.cache_read or 0, self.cache_write or 0]
        if min(prices) < 0:
            raise ValueError("model prices must not be negative")
        if self.markup is not None and self.markup < 0:
            raise ValueError("markup must not be negative")


class PaymentsConfig(LedgerConfig, kw_only=True, forbid_unknown_fields=True):
    """The ``payments`` skill's config (``agents.<agent>.skills.payments``).

    Amounts are credits (numbers or decimal strings); the ledger keeps them exactly.

    :ivar request_fee: charged once per request that reached the model.
    :ivar models: ``"provider/model"`` (or ``"provider/*"``, or ``"*"``) to its price.
    :ivar markup: added to every token price: ``0.2`` charges 20% more than ``models`` says.
    :ivar tools: tool name to credits per call, overriding the tool's ``@pricing``.
    :ivar min_balance: the least a caller must have available to start a request.
    :ivar default_reservation: credits reserved per request when the caller sends no
        ``X-Authorized-Amount``.
    :ivar reservation_ttl: seconds after which an unsettled reservation is released
        (a crashed process does not hold credits); keep it above ``server.request_timeout``.
    :ivar cap_max_tokens: lower ``max_tokens`` of an LLM call to what the rest of the
        reservation can pay for.
    :ivar charge_failed_tools: also charge tool calls that failed.
    :ivar require_known_models: refuse to start when one of the agent's models has no price.
    :ivar topup_hint: what a 402 tells the caller to do; ``{account}`` is replaced.
    """

    request_fee: Decimal = Decimal(0)
    models: dict[str, ModelPrice] = {}
    markup: Decimal = Decimal(0)
    tools: dict[str, Decimal] = {}
    min_balance: Decimal = Decimal(0)
    default_reservation: Decimal = Decimal(1)
    reservation_ttl: float = 900.0
    cap_max_tokens: bool = True
    charge_failed_tools: bool = False
    require_known_models: bool = True
    topup_hint: str = "top up with `robutler-kernel payments topup {account} <credits>`"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value in [
            ("request_fee", self.request_fee), ("markup", self.markup),
            ("min_balance", self.min_balance), ("default_reservation", self.default_reservation),
        ]:
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        for tool_name, credits in self.tools.items():
            if credits < 0:
                raise ValueError(f"tools.{tool_name} must not be negative")
        if self.default_reservation < max(self.min_balance, self.request_fee):
            raise ValueError(
                f"default_reservation ({self.default_reservation}) must be at least min_balance "
                f"({self.min_balance}) and request_fee ({self.request_fee})"
            )
        if self.reservation_ttl <= 0:
            raise ValueError("reservation_ttl must be positive")


__all__ = ["DEFAULT_SCHEMA", "DEFAULT_SQLITE_PATH", "LedgerConfig", "ModelPrice", "PaymentsConfig"]

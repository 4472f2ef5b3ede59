"""The skill's configuration (``agents.<agent>.skills.long_term_memory``), validated by msgspec."""

from __future__ import annotations

import os
import re
from typing import Literal

import msgspec

#: A table name: ``name`` or ``schema.name`` (schema: PostgreSQL only). Identifiers cannot be
#: SQL parameters, so they are restricted to characters that never need quoting.
TABLE_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]{0,47}\.)?[A-Za-z_][A-Za-z0-9_]{0,47}$")

#: Where the caller's user id may come from, in the order tried.
USER_SOURCES = ("identity", "param")
_HEADER_SOURCE = re.compile(r"^header:[a-z0-9-]+$")


class InjectConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Prompt injection: the most relevant facts for the last user message.

    :ivar enabled: add the facts to the system prompt of every request (default off).
    :ivar top_k: how many facts at most.
    :ivar max_chars: cap on the injected text, so a user with long facts cannot crowd
        out the agent's instructions.
    """

    enabled: bool = False
    top_k: int = 5
    max_chars: int = 2000

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError("inject.top_k must be at least 1")
        if self.max_chars < 100:
            raise ValueError("inject.max_chars must be at least 100")


class LongTermConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Config of ``long_term_memory``; every key and its default is in ``docs/plugins/longterm.md``.

    :ivar backend: ``sqlite`` (embedded, the default) or ``postgres``.
    :ivar path: the SQLite file (``sqlite`` only).
    :ivar dsn: the PostgreSQL DSN (``postgres`` only); default ``$DATABASE_URL``.
    :ivar table: the table; ``schema.table`` on PostgreSQL (the schema is created too).
    :ivar namespace: whose memories these are, with the user; default the agent's name
        (agents that share a namespace share what they know about a user).
    :ivar user_from: where the user id comes from, first found wins: ``identity`` (set
        by an auth skill), ``param`` (the request's ``user`` field), ``header:<name>``.
    :ivar inject: prompt injection settings.
    :ivar max_key_chars: longest key accepted.
    :ivar max_value_chars: longest value accepted.
    :ivar max_memories: facts one user may keep per namespace.
    :ivar recall_limit: most facts ``recall`` returns.
    :ivar list_limit: most facts ``list_memories`` returns.
    :ivar pool_min_size: PostgreSQL pool size at start.
    :ivar pool_max_size: PostgreSQL pool size at most.
    :ivar timeout: seconds any one backend operation (and connecting) may take.
    :ivar retry_interval: seconds between attempts to reach a backend that was down;
        requests in between fail fast with 503.
    """

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = "./robutler-longterm.db"
    dsn: str | None = None
    table: str = "robutler_longterm"
    namespace: str | None = None
    user_from: list[str] = msgspec.field(default_factory=lambda: list(USER_SOURCES))
    inject: InjectConfig = msgspec.field(default_factory=InjectConfig)
    max_key_chars: int = 100
    max_value_chars: int = 2000
    max_memories: int = 1000
    recall_limit: int = 10
    list_limit: int = 100
    pool_min_size: int = 1
    pool_max_size: int = 10
    timeout: float = 5.0
    retry_interval: float = 1.0

    def __post_init__(self) -> None:
        if not TABLE_NAME.match(self.table):
            raise ValueError(
                f"table {self.table!r} must be a plain SQL identifier (letters, digits, _), "
                "optionally schema-qualified: 'memories' or 'app.memories'"
            )
        if self.backend == "sqlite" and "." in self.table:
            raise ValueError("table: a schema-qualified name needs backend: postgres")
        if self.backend == "postgres" and not self.resolved_dsn:
            raise ValueError("backend postgres needs `dsn` (or the DATABASE_URL environment variable)")
        bad = [s for s in self.user_from if s not in USER_SOURCES and not _HEADER_SOURCE.match(s)]
        if bad or not self.user_from:
            raise ValueError(
                f"user_from {self.user_from!r}: each entry is 'identity', 'param' or "
                "'header:<lower-case-name>'"
            )
        for name in ("max_key_chars", "max_value_chars", "max_memories", "recall_limit", "list_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            raise ValueError("need 1 <= pool_min_size <= pool_max_size")
        if self.timeout <= 0 or self.retry_interval < 0:
            raise ValueError("timeout must be positive and retry_interval not negative")

    @property
    def resolved_dsn(self) -> str | None:
        """``dsn``, else ``$DATABASE_URL``."""
        return self.dsn or os.environ.get("DATABASE_URL") or None

    @property
    def setting(self) -> str:
        """The setting to check when the backend cannot be reached."""
        if self.backend == "postgres":
            return "skills.long_term_memory.dsn" + ("" if self.dsn else " (unset: $DATABASE_URL)")
        return "skills.long_term_memory.path"

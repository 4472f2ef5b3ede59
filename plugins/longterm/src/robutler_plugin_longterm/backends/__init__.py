"""Storage backends of long-term memory: what each must do, and how one is chosen."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..facts import Fact
from ..scope import Scope

if TYPE_CHECKING:
    from ..config import LongTermConfig

PutOutcome = Literal["created", "updated", "full"]


@dataclass(frozen=True, slots=True)
class Listing:
    """A page of a user's facts and how many there are in all."""

    facts: list[Fact]
    total: int


class Backend(ABC):
    """A place to keep facts. Every method is one transaction: it happens or it does not.

    :cvar kind: ``"sqlite"`` or ``"postgres"``, as in the config.
    :ivar label: where the data lives, without secrets (for errors and health checks).
    """

    kind: str = ""
    label: str = ""

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create the schema if it does not exist."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise unless the backend answers a trivial query."""

    @abstractmethod
    async def put(self, scope: Scope, key: str, value: str, max_memories: int) -> PutOutcome:
        """Insert or update a fact; ``"full"`` (nothing written) when a new key would take
        the user past ``max_memories``."""

    @abstractmethod
    async def delete(self, scope: Scope, key: str) -> bool:
        """Delete a fact; whether there was one."""

    @abstractmethod
    async def listing(self, scope: Scope, limit: int) -> Listing:
        """The user's facts ordered by key, at most ``limit``, and the total count."""

    @abstractmethod
    async def search(self, scope: Scope, terms: list[str], limit: int) -> list[Fact]:
        """Facts matching any of ``terms`` (full-text, stemmed), best first."""

    @abstractmethod
    async def recent(self, scope: Scope, limit: int) -> list[Fact]:
        """The most recently written facts, newest first."""

    @abstractmethod
    async def relevant(self, scope: Scope, terms: list[str], limit: int) -> list[Fact]:
        """Facts matching any of ``terms`` best first, then the others newest first: one
        query (prompt injection runs it on every request)."""

    @abstractmethod
    def is_backend_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` comes from the backend or the way to it (and so means 503)."""


def make_backend(config: LongTermConfig) -> Backend:
    """The backend ``config`` asks for. Drivers are imported here, not at plugin import,
    so that discovering the plugin stays cheap."""
    if config.backend == "postgres":
        from .postgres import PostgresBackend

        dsn = config.resolved_dsn
        assert dsn is not None  # the config refuses postgres without a DSN
        return PostgresBackend(
            dsn, config.table, min_size=config.pool_min_size, max_size=config.pool_max_size,
            timeout=config.timeout,
        )
    from .sqlite import SQLiteBackend

    return SQLiteBackend(config.path, config.table, timeout=config.timeout)


__all__ = ["Backend", "Listing", "PutOutcome", "make_backend"]

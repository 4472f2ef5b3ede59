"""What a registry backend stores and the operations both backends implement alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

#: What an upsert did: ``stored`` (new or renewed), ``taken`` (another identity holds the
#: name), ``full`` (the owner holds ``max_per_owner`` live registrations already).
UpsertOutcome = Literal["stored", "taken", "full"]

#: What a delete did.
DeleteOutcome = Literal["deleted", "missing", "forbidden"]


@dataclass(frozen=True, slots=True)
class Registration:
    """One published agent.

    :ivar name: the agent's name (unique in the registry).
    :ivar url: its base URL.
    :ivar description: its description.
    :ivar intents: what it can do.
    :ivar owner: the identity (``user_id``) that registered it.
    :ivar expires_at: when it lapses (seconds since the epoch).
    """

    name: str
    url: str
    description: str
    intents: tuple[str, ...]
    owner: str
    expires_at: float

    def as_dict(self, now: float) -> dict[str, Any]:
        """The registration as the registry's routes answer it."""
        return {
            "object": "registration",
            "name": self.name,
            "url": self.url,
            "description": self.description,
            "intents": list(self.intents),
            "owner": self.owner,
            "expires_at": self.expires_at,
            "expires_in": max(0.0, round(self.expires_at - now, 3)),
        }


class Backend(Protocol):
    """Registrations in a table. A registration whose ``expires_at <= now`` is gone: no
    operation returns it, and anyone may take its name.

    :cvar kind: ``sqlite`` or ``postgres``.
    :ivar label: where it lives, for errors and health.
    """

    kind: str
    label: str

    async def open(self) -> None:
        """Connect and create the table if needed."""

    async def close(self) -> None:
        """Disconnect."""

    async def ping(self) -> None:
        """``SELECT 1``."""

    async def upsert(self, reg: Registration, *, now: float, admin: bool, max_per_owner: int) -> UpsertOutcome:
        """Store ``reg`` unless another identity holds a live registration of its name (an
        admin may renew it; it stays its owner's), or the owner is at ``max_per_owner``."""

    async def delete(self, name: str, *, owner: str, admin: bool, now: float) -> DeleteOutcome:
        """Remove the live registration ``name`` if ``owner`` holds it (or ``admin``)."""

    async def get(self, name: str, *, now: float) -> Registration | None:
        """The live registration ``name``."""

    async def live(self, *, now: float, limit: int) -> list[Registration]:
        """Live registrations by name, at most ``limit``."""

    async def purge(self, *, now: float) -> int:
        """Delete lapsed rows; how many."""

    def is_backend_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the database failed (a 503), not a bug."""

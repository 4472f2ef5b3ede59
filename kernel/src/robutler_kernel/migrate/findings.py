"""What the migration found about each V1 field: mapped, mapped with a note, not migrated
(with the reason), or an error that stops the migration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["mapped", "note", "not migrated", "error"]

#: Levels that make ``migrate --check`` exit 1.
FAILING: frozenset[str] = frozenset({"not migrated", "error"})


@dataclass(frozen=True)
class Finding:
    """One V1 field and what became of it.

    :ivar level: ``mapped`` (carried over), ``note`` (carried over; read this),
        ``not migrated`` (left out of the V2 config, with the reason: the agent works
        without it), ``error`` (nothing is written until it is fixed).
    :ivar where: ``file:line`` of the V1 field.
    :ivar agent: the agent's V2 name.
    :ivar field: the V1 field's path (``capabilities[2]``, ``pricing.per_token``).
    :ivar message: what it became, or why not.
    """

    level: Level
    where: str
    agent: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.agent}: {self.field}: {self.message}"


__all__ = ["FAILING", "Finding", "Level"]

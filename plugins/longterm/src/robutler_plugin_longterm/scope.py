"""Whose memories a request may touch: the (namespace, user) pair, never a shared bucket.

Who the user is follows the contract's shared rule (:mod:`robutler_specs.caller`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from robutler_specs import RequestContext
from robutler_specs.caller import MAX_USER_CHARS, caller_key_of
from robutler_specs.caller import NoCaller as NoUser

__all__ = ["MAX_USER_CHARS", "NoUser", "Scope", "scope_of"]


@dataclass(frozen=True, slots=True)
class Scope:
    """One user's memories in one namespace (by default the agent)."""

    namespace: str
    user: str


def scope_of(ctx: RequestContext, namespace: str, sources: Sequence[str]) -> Scope:
    """The caller's scope; raises :class:`NoUser` with a message for the model when unknown."""
    user = caller_key_of(ctx, sources, what="long-term memory",
                         consequence="their memories cannot be saved or read")
    return Scope(namespace, user)

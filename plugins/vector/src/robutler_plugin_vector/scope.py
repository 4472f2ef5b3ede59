"""Whose documents a request may touch: the (namespace, user) pair, never a shared bucket.

Who the user is follows the contract's shared rule (:mod:`robutler_specs.caller`): the
first of ``user_from`` that names one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from robutler_specs import RequestContext
from robutler_specs.caller import MAX_USER_CHARS, caller_key_of
from robutler_specs.caller import NoCaller as NoUser

__all__ = ["MAX_USER_CHARS", "NoUser", "Scope", "scope_of"]


@dataclass(frozen=True, slots=True)
class Scope:
    """One user's documents in one namespace (by default the agent).

    :ivar key: a hex digest of both, the only value filter expressions ever compare
        with: hex needs no escaping, so no user id can change a filter's meaning.
    """

    namespace: str
    user: str

    @property
    def key(self) -> str:
        """``sha256(namespace NUL user)`` in hex (64 characters)."""
        return hashlib.sha256(f"{self.namespace}\x00{self.user}".encode()).hexdigest()


def scope_of(ctx: RequestContext, namespace: str, sources: Sequence[str]) -> Scope:
    """The caller's scope; raises :class:`NoUser` with a message for the model when unknown."""
    user = caller_key_of(ctx, sources, what="vector memory",
                         consequence="documents cannot be stored or searched")
    return Scope(namespace, user)

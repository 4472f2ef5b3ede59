"""Whose memories a request may touch: the (namespace, user) pair, never a shared bucket."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from robutler_specs import RequestContext

#: Longest user id accepted (characters); longer ids are refused, not truncated, so two
#: users can never collide on a common prefix.
MAX_USER_CHARS = 256


class NoUser(Exception):
    """The request names no user, so there is no memory to read or write."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One user's memories in one namespace (by default the agent)."""

    namespace: str
    user: str


def caller(ctx: RequestContext, sources: Sequence[str]) -> tuple[str, str] | None:
    """The source and user id of the request, from the first of ``sources`` that has one.

    ``identity`` is ``ctx.identity.user_id`` (set by an auth skill), ``param`` the
    request's ``user`` field, ``header:<name>`` a request header.
    """
    for source in sources:
        value: object = None
        if source == "identity":
            value = ctx.identity.user_id
        elif source == "param":
            value = ctx.params.get("user")
        elif source.startswith("header:"):
            value = ctx.headers.get(source.partition(":")[2])
        if isinstance(value, str) and value.strip():
            return source, value.strip()
    return None


def user_key(source: str, user: str) -> str:
    """How a user is stored: prefixed by where the id came from (``id:alice``,
    ``user:alice``, ``header:x-user-id:alice``), so that a ``user`` field a client merely
    claims never reaches the memories of the authenticated user of the same name."""
    prefix = {"identity": "id", "param": "user"}.get(source, source)
    return f"{prefix}:{user}"


def scope_of(ctx: RequestContext, namespace: str, sources: Sequence[str]) -> Scope:
    """The caller's scope; raises :class:`NoUser` with a message for the model when unknown."""
    found = caller(ctx, sources)
    if found is None:
        where = ", ".join(_describe(s) for s in sources)
        raise NoUser(
            "long-term memory is per user and this request names no user "
            f"(looked at: {where}). Tell the user their memories cannot be saved or read "
            "in this conversation; the client should send `user` in the request or "
            "authenticate."
        )
    source, user = found
    if len(user) > MAX_USER_CHARS:
        raise NoUser(f"the user id is longer than {MAX_USER_CHARS} characters; it is refused")
    if "\x00" in user:
        raise NoUser("the user id contains a NUL character; it is refused")
    return Scope(namespace, user_key(source, user))


def _describe(source: str) -> str:
    if source == "identity":
        return "the authenticated identity"
    if source == "param":
        return "the request's `user` field"
    return f"the {source.partition(':')[2]} header"

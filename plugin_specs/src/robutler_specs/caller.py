"""Who a request is for: one rule, shared by every skill that keeps data per user.

The user comes from the first of ``sources`` that names one:

* ``identity`` -- ``ctx.identity.user_id``, set by an auth skill (trusted);
* ``param`` -- the request's ``user`` field (claimed by the client);
* ``header:<name>`` -- a request header (claimed, unless a proxy in front sets it).

:func:`caller_key` prefixes the id with where it came from (``id:alice``, ``user:alice``),
so a ``user`` field a client merely claims never reaches the data of the authenticated user
of the same name.
"""

from __future__ import annotations

from collections.abc import Sequence

from .context import RequestContext
from .errors import ToolError

#: The sources skills use when their config says nothing.
DEFAULT_SOURCES: tuple[str, ...] = ("identity", "param")

#: Longest user id accepted (characters); longer ids are refused, not truncated, so two
#: users can never collide on a common prefix.
MAX_USER_CHARS = 256


class NoCaller(ToolError):
    """The request names no (acceptable) user; the message says so in words a model can
    pass on to the person."""


def caller(ctx: RequestContext, sources: Sequence[str] = DEFAULT_SOURCES) -> tuple[str, str] | None:
    """The ``(source, user id)`` of the request, from the first source that has one."""
    for source in sources:
        value: object = None
        if source == "identity":
            value = ctx.identity.user_id
        elif source == "param":
            value = ctx.params.get("user")
        elif source.startswith("header:"):
            value = ctx.headers.get(source.partition(":")[2].lower())
        if isinstance(value, str) and value.strip():
            return source, value.strip()
    return None


def caller_key(source: str, user: str) -> str:
    """How a user is stored: the id prefixed by its source (``id:``, ``user:``, ``header:x:``)."""
    prefix = {"identity": "id", "param": "user"}.get(source, source)
    return f"{prefix}:{user}"


def describe_source(source: str) -> str:
    """A source in words, for error messages."""
    if source == "identity":
        return "the authenticated identity"
    if source == "param":
        return "the request's `user` field"
    return f"the {source.partition(':')[2]} header"


def caller_key_of(ctx: RequestContext, sources: Sequence[str], *, what: str, consequence: str) -> str:
    """The caller's storage key (:func:`caller_key`), or :class:`NoCaller`.

    :param what: the data kept per user, for the message ("long-term memory").
    :param consequence: what that means for the person ("their memories cannot be saved").
    """
    found = caller(ctx, sources)
    if found is None:
        where = ", ".join(describe_source(s) for s in sources)
        raise NoCaller(
            f"{what} is per user and this request names no user (looked at: {where}). "
            f"Tell the user {consequence} in this conversation; the client should send "
            "`user` in the request or authenticate."
        )
    source, user = found
    if len(user) > MAX_USER_CHARS:
        raise NoCaller(f"the user id is longer than {MAX_USER_CHARS} characters; it is refused")
    if "\x00" in user:
        raise NoCaller("the user id contains a NUL character; it is refused")
    return caller_key(source, user)


__all__ = [
    "DEFAULT_SOURCES",
    "MAX_USER_CHARS",
    "NoCaller",
    "caller",
    "caller_key",
    "caller_key_of",
    "describe_source",
]

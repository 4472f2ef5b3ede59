"""Which conversation a request belongs to.

In order:

1. the ``X-Conversation-Id`` header (the header name is configurable), scoped to the
   caller: ``<agent>:c:<caller>:<id>`` where ``<caller>`` is the authenticated user, else
   the request's ``user`` field, else ``anon``. Two users sending the same id get two
   conversations; anonymous callers share the ``anon`` scope, so their ids must be
   unguessable (a UUID);
2. else the authenticated identity: ``<agent>:u:<user_id>`` (one running conversation per
   user and agent);
3. else the request's ``user`` field: ``<agent>:f:<user>``. It is what the client says,
   not proven, so it never shares a conversation with an authenticated user of that name;
4. else nothing: the request is stateless (an anonymous caller with no id would otherwise
   share one conversation with every other anonymous caller).

Every part is percent-encoded, so no id can forge another key (``:`` is encoded).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from robutler_specs import BadRequest, Identity

#: The longest accepted conversation id, in characters.
MAX_ID_LENGTH = 256


def _part(value: str) -> str:
    return quote(value, safe="")


def conversation_key(
    agent: str,
    headers: Mapping[str, str],
    identity: Identity,
    user_field: object,
    *,
    header: str = "X-Conversation-Id",
) -> str | None:
    """The conversation key of a request (without the backend's prefix), or ``None``.

    :param agent: the agent's name.
    :param headers: the request headers, lower-case names.
    :param identity: the caller (``identity.user_id`` when authenticated).
    :param user_field: the request's ``user`` field, if any.
    :param header: the header naming the conversation.
    :raises BadRequest: the header is empty or longer than :data:`MAX_ID_LENGTH`.
    """
    user = user_field if isinstance(user_field, str) and user_field else None
    raw = headers.get(header.lower())
    if raw is not None:
        conversation = raw.strip()
        if not conversation:
            raise BadRequest(
                f"the {header} header is empty: send a conversation id, or leave the header out",
                param=header,
                code="invalid_conversation_id",
            )
        if len(conversation) > MAX_ID_LENGTH:
            raise BadRequest(
                f"the {header} header is {len(conversation)} characters long; the limit is "
                f"{MAX_ID_LENGTH} (a UUID is 36)",
                param=header,
                code="invalid_conversation_id",
            )
        if identity.user_id:
            caller = "u=" + _part(identity.user_id)
        elif user:
            caller = "f=" + _part(user)
        else:
            caller = "anon"
        return f"{_part(agent)}:c:{caller}:{_part(conversation)}"
    if identity.user_id:
        return f"{_part(agent)}:u:{_part(identity.user_id)}"
    if user:
        return f"{_part(agent)}:f:{_part(user)}"
    return None


__all__ = ["MAX_ID_LENGTH", "conversation_key"]

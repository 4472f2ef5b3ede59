"""A model turn that calls the agent's tools and the client's tools at once.

OpenAI's protocol has no place for the server's own calls in what goes back to the client:
the client gets the calls it must run (``finish_reason: "tool_calls"``) and sends back
that assistant message and its results. So that the model still sees the agent's calls of
that turn and their results in the follow-up, the kernel:

1. gives the client's calls of a mixed turn ids of its own (``call_rbt...``) and keeps the
   whole turn (the assistant message with every call, and the agent's tool results) in the
   kernel's state store (``kernel.state_store``: shared by replicas when a plugin provides
   a shared one), under the first of those ids, for :data:`TTL` seconds;
2. when a request's conversation holds an assistant message with such an id, puts the whole
   turn back in its place: the assistant message with every call, the agent's results, then
   the client's results as sent.

It holds for any order of calls, for streams (the ids are the same) and for a client that
sends the history again on every request. A turn no longer in the store (expired, or a
replica without a shared store) leaves the conversation as the client sent it: still valid,
only without the agent's part of that turn (logged).
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import msgspec

from robutler_specs import Message, RequestError, ToolCall

if TYPE_CHECKING:
    from robutler_specs import StateStore

log = logging.getLogger("robutler.toolturns")

#: The prefix of the ids the kernel gives client calls of a mixed turn.
PREFIX = "call_rbt"
#: Seconds a mixed turn is kept for its follow-up (a day: a person may answer a tool late).
TTL = 24 * 3600.0


class StoredTurn(msgspec.Struct):
    """A mixed turn: the assistant message with every call, and the agent's results."""

    message: Message
    results: list[Message]


_decode = msgspec.json.Decoder(StoredTurn).decode
_encode = msgspec.json.Encoder().encode


def _key(call_id: str) -> str:
    return f"toolturn:{call_id}"


async def remember(
    store: StateStore, message: Message, client_calls: list[ToolCall], results: list[Message]
) -> list[ToolCall]:
    """Keep a mixed turn; returns the client's calls with the ids it is kept under."""
    ids = {c.id: f"{PREFIX}{uuid.uuid4().hex}" for c in client_calls}
    calls = [ToolCall(id=ids.get(c.id, c.id), function=c.function) for c in message.tool_calls or ()]
    whole = Message(role="assistant", content=message.content, tool_calls=calls)
    renamed = [c for c in calls if c.id.startswith(PREFIX)]
    try:
        await store.set(_key(renamed[0].id), _encode(StoredTurn(whole, results)), TTL)
    except RequestError as exc:
        log.warning("a mixed tool turn could not be kept (%s): its follow-up will lack the agent's calls", exc.message)
    return renamed


async def splice(store: StateStore, messages: list[Message]) -> None:
    """Put kept mixed turns back into ``messages`` (in place)."""
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        if message.role != "assistant" or not message.tool_calls:
            continue
        first = next((c.id for c in message.tool_calls if c.id.startswith(PREFIX)), None)
        if first is None:
            continue
        try:
            raw = await store.get(_key(first))
        except RequestError as exc:
            log.warning("a mixed tool turn could not be read (%s)", exc.message)
            continue
        if raw is None:
            log.warning("the mixed tool turn of call %s is no longer kept: the model will not see the agent's part", first)
            continue
        turn = _decode(raw)
        messages[index - 1] = turn.message
        messages[index:index] = turn.results
        index += len(turn.results)


__all__ = ["PREFIX", "TTL", "StoredTurn", "remember", "splice"]

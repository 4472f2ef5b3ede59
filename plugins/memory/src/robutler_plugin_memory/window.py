"""The conversation window and tool-pair consistency: pure functions, shared by the backends.

A conversation is cut into *groups*: every message that is not a tool result starts a group,
and the tool results after it belong to it. An assistant message with ``tool_calls`` and its
results are therefore one group, and the window only ever drops whole groups from the front:
a tool result never outlives its call. The Redis backend runs the same rule as a Lua script
(:mod:`.redis_store`); a test checks that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from robutler_specs import Message, ToolCall

#: Characters per token of the estimate (the usual rule of thumb for English text).
CHARS_PER_TOKEN = 4
#: Tokens every message costs beyond its text (role, separators), as OpenAI counts them.
MESSAGE_OVERHEAD = 4
#: What a non-text content part (an image) is counted as: OpenAI's low-detail image cost.
NON_TEXT_PART_TOKENS = 85

#: Roles that are instructions, never stored: the history goes after them.
SYSTEM_ROLES = frozenset({"system", "developer"})


def estimate_tokens(message: Message) -> int:
    """Approximate tokens of ``message``: 4 characters a token, plus a per-message overhead."""
    chars = 0
    extra = MESSAGE_OVERHEAD
    content = message.content
    if isinstance(content, str):
        chars += len(content)
    elif content:
        for part in content:
            if part.get("type") == "text":
                chars += len(str(part.get("text", "")))
            else:
                extra += NON_TEXT_PART_TOKENS
    for call in message.tool_calls or ():
        chars += len(call.id) + len(call.function.name) + len(call.function.arguments)
    if message.tool_call_id:
        chars += len(message.tool_call_id)
    return math.ceil(chars / CHARS_PER_TOKEN) + extra


def window_start(items: Sequence[tuple[bool, int]], max_messages: int, max_tokens: int | None) -> int:
    """Where the kept window of ``items`` starts (``len(items)`` when nothing is kept).

    :param items: one ``(is_tool_result, tokens)`` pair per message, oldest first.
    :param max_messages: the most messages to keep.
    :param max_tokens: the most tokens to keep, or ``None`` for no limit.
    :return: the index of the first kept message. Whole groups are kept, newest first,
        while both limits hold; the newest group is always kept, even alone over a limit
        (the current turn is never cut in half). Tool results before the first group
        start (orphans) are never kept.
    """
    start = len(items)
    count = tokens = 0
    group_count = group_tokens = 0
    first = True
    for index in range(len(items) - 1, -1, -1):
        is_tool, item_tokens = items[index]
        group_count += 1
        group_tokens += item_tokens
        if is_tool:
            continue
        if not first and (
            count + group_count > max_messages
            or (max_tokens is not None and tokens + group_tokens > max_tokens)
        ):
            break
        first = False
        count += group_count
        tokens += group_tokens
        group_count = group_tokens = 0
        start = index
    return start


def drop_to_window(items: Sequence[tuple[bool, int]], tokens: int, max_messages: int,
                   max_tokens: int | None) -> tuple[int, int]:
    """:func:`window_start`, found from the oldest end: for a list that was a window before
    a few items were added, this costs the items it drops, not the whole list.

    Every older group makes a suffix longer and heavier, so the longest run of newest whole
    groups that fits is what is left after dropping the oldest groups until the rest fits
    (never the newest group), once the orphan tool results at the start are gone.

    :param items: one ``(is_tool_result, tokens)`` pair per message, oldest first.
    :param tokens: the sum of the tokens of ``items``.
    :return: the index of the first kept message (``len(items)`` when none is), and the
        tokens kept.
    """
    total = len(items)
    start = 0
    while start < total and items[start][0]:
        tokens -= items[start][1]
        start += 1
    while total - start > max_messages or (max_tokens is not None and tokens > max_tokens):
        end = start + 1
        group_tokens = items[start][1]
        while end < total and items[end][0]:
            group_tokens += items[end][1]
            end += 1
        if end >= total:
            break  # the newest group is always kept
        tokens -= group_tokens
        start = end
    return start, tokens


def trim(messages: Sequence[Message], max_messages: int, max_tokens: int | None) -> list[Message]:
    """``messages`` cut to their window (see :func:`window_start`)."""
    items = [(m.role == "tool", estimate_tokens(m)) for m in messages]
    return list(messages[window_start(items, max_messages, max_tokens) :])


def pending_calls(messages: Sequence[Message]) -> set[str]:
    """Ids of the tool calls of the last group that have no result yet (calls the client
    must answer: its own tools)."""
    answered: set[str] = set()
    for message in reversed(messages):
        if message.role == "tool":
            if message.tool_call_id:
                answered.add(message.tool_call_id)
            continue
        return {c.id for c in message.tool_calls or ()} - answered
    return set()


def for_model(messages: Sequence[Message], answered_now: Iterable[str] = ()) -> list[Message]:
    """The stored history made safe to send to a model.

    Tool results whose call is not the message right before them (orphans, duplicates) are
    dropped, and so are tool calls that got no result, except calls of the last group that
    ``answered_now`` (the tool results the current request brings) answers. An assistant
    message left with no calls and no content is dropped. So every call sent has its
    results and every result its call, which providers require.
    """
    for message in messages:
        if message.role == "tool" or message.tool_calls:
            break
    else:
        return list(messages)  # no tool calls, no results: nothing to check
    answered_now = set(answered_now)
    out: list[Message] = []
    index, total = 0, len(messages)
    while index < total:
        message = messages[index]
        index += 1
        if message.role == "tool":
            continue  # an orphan: its call is not right before it
        if message.role != "assistant" or not message.tool_calls:
            out.append(message)
            continue
        ids = {c.id for c in message.tool_calls}
        results: dict[str, Message] = {}
        while index < total and messages[index].role == "tool":
            result = messages[index]
            index += 1
            if result.tool_call_id in ids and result.tool_call_id not in results:
                results[result.tool_call_id] = result
        last = index == total
        kept = [c for c in message.tool_calls if c.id in results or (last and c.id in answered_now)]
        if kept:
            out.append(message if len(kept) == len(message.tool_calls) else _with_calls(message, kept))
            out.extend(results[c.id] for c in kept if c.id in results)
        elif message.content:
            out.append(_with_calls(message, None))
    return out


def _with_calls(message: Message, calls: list[ToolCall] | None) -> Message:
    return Message(
        role=message.role, content=message.content, name=message.name, tool_calls=calls or None
    )


__all__ = [
    "CHARS_PER_TOKEN",
    "SYSTEM_ROLES",
    "drop_to_window",
    "estimate_tokens",
    "for_model",
    "pending_calls",
    "trim",
    "window_start",
]

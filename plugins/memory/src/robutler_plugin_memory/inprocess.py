"""The in-process backend: a bounded LRU of conversations in this process's memory.

The default: nothing to run, but one process only (replicas do not share it) and gone on
restart. Reads and writes never await, so each one is atomic on the event loop. Messages are
copied in and out, as a real store would: a hook editing a message of one request in place
never changes what later requests load.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msgspec.structs import replace as copy_message

from robutler_specs import Message

from .window import drop_to_window, estimate_tokens


@dataclass(slots=True)
class _Conversation:
    messages: list[Message] = field(default_factory=list)
    #: One ``(is_tool_result, tokens)`` per message, so trimming never re-estimates.
    items: list[tuple[bool, int]] = field(default_factory=list)
    #: The sum of the items' tokens.
    tokens: int = 0
    expires_at: float | None = None


class InProcessStore:
    """Conversations in a dict, least recently used dropped beyond ``max_conversations``.

    :param max_messages: window size in messages.
    :param max_tokens: window size in estimated tokens, or ``None``.
    :param ttl_seconds: forget a conversation this long after its last write, or ``None``.
    :param max_conversations: the LRU bound.
    :param clock: monotonic seconds (tests pass a fake one).
    """

    kind = "memory"

    def __init__(
        self,
        *,
        max_messages: int,
        max_tokens: int | None,
        ttl_seconds: float | None,
        max_conversations: int,
        name: str = "short_term_memory:memory",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_messages = max_messages
        self.max_tokens = max_tokens
        self.ttl_seconds = ttl_seconds
        self.max_conversations = max_conversations
        self.name = name
        self.clock = clock
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._conversations)

    async def start(self) -> None:
        """Nothing to open."""

    async def stop(self) -> None:
        """Forget everything (the process is going away)."""
        self._conversations.clear()

    def _get(self, key: str) -> _Conversation | None:
        conversation = self._conversations.get(key)
        if conversation is None:
            return None
        if conversation.expires_at is not None and self.clock() >= conversation.expires_at:
            del self._conversations[key]
            return None
        self._conversations.move_to_end(key)
        return conversation

    async def load(self, key: str) -> list[Message]:
        """The stored conversation, ``[]`` when unknown or expired."""
        conversation = self._get(key)
        return [copy_message(m) for m in conversation.messages] if conversation else []

    def _write(self, key: str, messages: list[Message], *, replace: bool) -> None:
        conversation = None if replace else self._get(key)
        if conversation is None:
            conversation = _Conversation()
        all_messages = conversation.messages
        items = conversation.items
        all_messages.extend([copy_message(m) for m in messages])
        added = [(m.role == "tool", estimate_tokens(m)) for m in messages]
        items.extend(added)
        # The stored list was a window: only the oldest groups can fall out of it.
        start, conversation.tokens = drop_to_window(
            items, conversation.tokens + sum(t for _, t in added), self.max_messages, self.max_tokens
        )
        if start >= len(items):
            self._conversations.pop(key, None)
            return
        if start:
            del all_messages[:start]
            del items[:start]
        if self.ttl_seconds is not None:
            conversation.expires_at = self.clock() + self.ttl_seconds
        self._conversations[key] = conversation
        self._conversations.move_to_end(key)
        while len(self._conversations) > self.max_conversations:
            self._conversations.popitem(last=False)

    async def append(self, key: str, messages: list[Message]) -> None:
        """Add ``messages``, keep the window, reset the TTL, mark the conversation used."""
        self._write(key, messages, replace=False)

    async def replace(self, key: str, messages: list[Message]) -> None:
        """Make ``messages`` the whole (windowed) conversation."""
        self._write(key, messages, replace=True)

    def write_soon(self, key: str, messages: list[Message], *, replace: bool,
                   failed: Callable[[Any], None]) -> bool:
        """The write, done now (it cannot fail): the same as :meth:`append` /
        :meth:`replace` without a coroutine."""
        self._write(key, messages, replace=replace)
        return True

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """``short_term_memory:memory <agent>``: how full the LRU is."""

        async def check() -> dict[str, int]:
            return {"conversations": len(self._conversations), "max_conversations": self.max_conversations}

        return {self.name: check}


__all__ = ["InProcessStore"]

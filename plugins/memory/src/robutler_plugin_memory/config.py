"""The configuration of the ``short_term_memory`` skill."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

#: Used when neither ``redis_url`` nor ``$REDIS_URL`` is set.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class MemoryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``agents.<agent>.skills.short_term_memory``.

    :ivar backend: ``memory`` (in-process, bounded LRU: one process only) or ``redis``
        (shared by every replica on the same Redis).
    :ivar redis_url: the Redis to use; ``null`` means ``$REDIS_URL``, else
        ``redis://127.0.0.1:6379/0``.
    :ivar max_messages: the most messages one conversation keeps (oldest dropped first, a
        tool call always together with its results).
    :ivar max_tokens: the most tokens (estimated: 4 characters a token) one conversation
        keeps; ``null`` for no token limit.
    :ivar ttl_seconds: a conversation is forgotten this long after its last stored turn;
        ``null`` keeps it until evicted.
    :ivar key_prefix: prefix of every Redis key (``<prefix><agent>:<conversation>``).
    :ivar max_conversations: the in-process backend's bound: least recently used
        conversations are dropped beyond it.
    :ivar timeout_seconds: how long one backend operation (and the health check) may take.
    :ivar conversation_header: the request header naming the conversation.
    """

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None
    max_messages: Annotated[int, msgspec.Meta(ge=1)] = 50
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = 8000
    ttl_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = 86400.0
    key_prefix: str = "robutler:stm:"
    max_conversations: Annotated[int, msgspec.Meta(ge=1)] = 10000
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    conversation_header: Annotated[str, msgspec.Meta(min_length=1)] = "X-Conversation-Id"

    def resolved_redis_url(self, env: Mapping[str, str] | None = None) -> str:
        """``redis_url``, else ``$REDIS_URL``, else :data:`DEFAULT_REDIS_URL`."""
        env = os.environ if env is None else env
        return self.redis_url or env.get("REDIS_URL") or DEFAULT_REDIS_URL


__all__ = ["DEFAULT_REDIS_URL", "MemoryConfig"]

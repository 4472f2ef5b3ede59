"""Tasks and conversations kept between requests, in the kernel's state store (shared by
replicas when a plugin provides one): a task for ``tasks/get``, and a context's messages
(``contextId``) so the next message of the context continues the conversation. Each is
kept for its owner only (the caller's user id; anonymous callers share the empty one,
behind random ids)."""

from __future__ import annotations

import msgspec
from a2a.types import Task
from google.protobuf.json_format import MessageToDict, ParseDict

from robutler_specs import Message, StateStore


class _Stored(msgspec.Struct):
    owner: str
    task: dict[str, object] | None = None
    messages: list[Message] = []


class TaskStore:
    """Tasks and histories of one agent.

    :param store: the kernel's state store.
    :param agent: the agent's name (part of every key).
    :param ttl: seconds each entry is kept.
    :param max_history: the most messages kept per context.
    """

    def __init__(self, store: StateStore, agent: str, ttl: float, max_history: int) -> None:
        self.store = store
        self.agent = agent
        self.ttl = ttl
        self.max_history = max_history

    async def _get(self, key: str, owner: str) -> _Stored | None:
        raw = await self.store.get(key)
        if raw is None:
            return None
        try:
            stored = msgspec.json.decode(raw, type=_Stored)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return stored if stored.owner == owner else None

    async def save_task(self, task: Task, owner: str) -> None:
        """Keep ``task`` (its latest state) for ``owner``."""
        value = _Stored(owner=owner, task=MessageToDict(task))
        await self.store.set(f"a2a:task:{self.agent}:{task.id}", msgspec.json.encode(value), self.ttl)

    async def task(self, task_id: str, owner: str) -> Task | None:
        """``owner``'s task ``task_id``, or ``None``."""
        stored = await self._get(f"a2a:task:{self.agent}:{task_id}", owner)
        if stored is None or stored.task is None:
            return None
        task = Task()
        ParseDict(stored.task, task, ignore_unknown_fields=True)
        return task

    async def history(self, context_id: str, owner: str) -> list[Message]:
        """The messages of ``owner``'s context so far."""
        stored = await self._get(f"a2a:context:{self.agent}:{context_id}", owner)
        return [] if stored is None else stored.messages

    async def save_history(self, context_id: str, owner: str, messages: list[Message]) -> None:
        """Keep the context's messages (the latest ``max_history``)."""
        kept = messages[-self.max_history:] if self.max_history else []
        value = _Stored(owner=owner, messages=kept)
        await self.store.set(f"a2a:context:{self.agent}:{context_id}", msgspec.json.encode(value), self.ttl)


__all__ = ["TaskStore"]

"""The ``short_term_memory`` skill: a conversation's history, before and after each LLM call."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from robutler_specs import (
    ConfigError,
    LLMCall,
    LLMResult,
    Message,
    RequestContext,
    ServiceUnavailable,
    Skill,
    ToolInvocation,
    ToolResult,
    hookimpl,
)

from .config import DEFAULT_REDIS_URL, MemoryConfig
from .inprocess import InProcessStore
from .keys import conversation_key
from .redis_store import STATE_KEY, RedisStore, SharedClients
from .store import Store, StoreUnavailable
from .turn import Turn, own_messages, sends_history
from .window import SYSTEM_ROLES, for_model, pending_calls, trim

log = logging.getLogger("robutler.memory")


class ShortTermMemory(Skill):
    """Remembers each conversation: stored history goes into every LLM call of a request,
    and the request's new messages are stored when it succeeds.

    Which conversation a request belongs to is decided by :func:`.keys.conversation_key`;
    the window, TTL and backend by :class:`.config.MemoryConfig`. Request state lives in
    ``ctx.state["short_term_memory"]`` (a :class:`.turn.Turn`; other skills may read its
    ``history``).
    """

    name = "short_term_memory"
    Config = MemoryConfig
    # After the normal skills (auth sets the identity first; guardrails rewrite messages
    # and tool results before they are recorded), before analytics.
    priority = 60
    description = "Short-term memory: the conversation history, in-process or in Redis"

    config: MemoryConfig

    def __init__(self, config: Any, agent: Any) -> None:
        super().__init__(config, agent)
        self.store: Store = self._make_store()

    def _make_store(self) -> Store:
        cfg = self.config
        if cfg.backend == "redis":
            return RedisStore(
                cfg.resolved_redis_url(),
                max_messages=cfg.max_messages,
                max_tokens=cfg.max_tokens,
                ttl_seconds=cfg.ttl_seconds,
                timeout=cfg.timeout_seconds,
            )
        return InProcessStore(
            max_messages=cfg.max_messages,
            max_tokens=cfg.max_tokens,
            ttl_seconds=cfg.ttl_seconds,
            max_conversations=cfg.max_conversations,
            name=f"short_term_memory:memory {self.agent.name}",
        )

    @property
    def _setting(self) -> str:
        return f"agents.{self.agent.name}.skills.{self.name}"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backend (Redis: a connection pool shared by the agents on that URL).

        :raises ConfigError: ``redis_url`` is not a Redis URL.
        """
        if isinstance(self.store, RedisStore):
            shared = self.kernel.state.get(STATE_KEY)
            if shared is None:
                shared = self.kernel.state[STATE_KEY] = SharedClients()
            self.store.shared = shared
        try:
            await self.store.start()
        except ValueError as exc:
            raise ConfigError(
                f"{self._setting}.redis_url: {exc} (expected e.g. {DEFAULT_REDIS_URL})"
            ) from None

    async def stop(self) -> None:
        """Close the backend."""
        await self.store.stop()

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """The backend's check: Redis PING (with ``timeout_seconds``), or the in-process
        LRU's size."""
        return self.store.health_checks()

    def describe(self) -> dict[str, Any]:
        """The memory settings a caller may rely on."""
        cfg = self.config
        return {
            "backend": cfg.backend,
            "conversation_header": cfg.conversation_header,
            "max_messages": cfg.max_messages,
            "max_tokens": cfg.max_tokens,
            "ttl_seconds": cfg.ttl_seconds,
        }

    def _unavailable(self, exc: StoreUnavailable) -> ServiceUnavailable:
        if "key_prefix" in exc.cause:
            check = f"{self._setting}.key_prefix"
        else:
            check = f"{self._setting}.redis_url (default: $REDIS_URL, else {DEFAULT_REDIS_URL}) and that Redis is running"
        return ServiceUnavailable(
            f"short-term memory backend {exc.backend} is unavailable ({exc.cause}); check {check}",
            code="memory_unavailable",
            plugin=self.name,
        )

    # -- hooks ----------------------------------------------------------------------------

    @hookimpl
    async def on_connection(self, ctx: RequestContext) -> None:
        """Find the conversation and load its history (503 if the backend is down)."""
        key = conversation_key(
            self.agent.name,
            ctx.headers,
            ctx.identity,
            ctx.params.get("user"),
            header=self.config.conversation_header,
        )
        turn = Turn(key=None if key is None else self.config.key_prefix + key)
        ctx.state[self.name] = turn
        if turn.key is None:
            return
        try:
            stored = await self.store.load(turn.key)
        except StoreUnavailable as exc:
            raise self._unavailable(exc) from None
        own = own_messages(ctx.messages)
        turn.client_history = sends_history(own)
        if turn.client_history or not stored:
            return
        if len(stored) > self.config.max_messages:
            # Every write keeps the window, so this only happens after max_messages was
            # lowered (or another replica runs a larger one): cut it now rather than at
            # the next write. Tokens are not re-estimated on every read: too costly for
            # what it guards.
            stored = trim(stored, self.config.max_messages, self.config.max_tokens)
        turn.pending = pending_calls(stored)
        answered_now = {m.tool_call_id for m in own if m.role == "tool" and m.tool_call_id}
        turn.history = for_model(stored, answered_now & turn.pending)

    @hookimpl
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        """Insert the history after the system message(s), before the request's messages."""
        turn: Turn | None = ctx.state.get(self.name)
        if turn is None or not turn.history:
            return
        messages = call.messages
        at = 0
        while at < len(messages) and messages[at].role in SYSTEM_ROLES:
            at += 1
        if at < len(messages) and messages[at] is turn.history[0]:
            return  # this call already has it (a hook passed the same call twice)
        messages[at:at] = turn.history

    @hookimpl
    def after_llm_call(self, ctx: RequestContext, call: LLMCall, result: LLMResult) -> None:
        """Record each round's assistant message."""
        turn: Turn | None = ctx.state.get(self.name)
        if turn is not None and turn.key is not None:
            turn.rounds[call.round] = result.message

    def _record_result(self, ctx: RequestContext, invocation: ToolInvocation, result: ToolResult) -> None:
        turn: Turn | None = ctx.state.get(self.name)
        if turn is not None and turn.key is not None:
            turn.results[invocation.id] = Message(role="tool", tool_call_id=invocation.id, content=result.content)

    @hookimpl
    def after_toolcall(self, ctx: RequestContext, call: ToolInvocation, result: ToolResult) -> None:
        """Record a tool result, as the model sees it."""
        self._record_result(ctx, call, result)

    @hookimpl
    def after_handoff(self, ctx: RequestContext, handoff: ToolInvocation, result: ToolResult) -> None:
        """Record a handoff's result (a handoff is a tool call in the conversation)."""
        self._record_result(ctx, handoff, result)

    @hookimpl
    def on_message(self, ctx: RequestContext, message: Message) -> None:
        """Record the final assistant message (as earlier hooks left it)."""
        turn: Turn | None = ctx.state.get(self.name)
        if turn is not None and turn.key is not None and message.role == "assistant":
            turn.final = message

    @hookimpl
    async def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        """On success only, store the turn in one atomic write: the request's messages and
        everything the agent produced. A failed request stores nothing.

        The write is sent before the answer leaves, and the request does not wait for the
        backend's reply (see :meth:`.store.Store.write_soon`); a failure is logged."""
        turn: Turn | None = ctx.state.get(self.name)
        if error is not None or turn is None or turn.key is None:
            return
        client_tools = {t.function.name for t in ctx.client_tools}
        new = turn.incoming(ctx.messages) + turn.produced(client_tools)
        if self.store.write_soon(turn.key, new, replace=turn.client_history, failed=self._not_stored):
            return
        try:
            if turn.client_history:
                await self.store.replace(turn.key, new)
            else:
                await self.store.append(turn.key, new)
        except StoreUnavailable as exc:
            self._not_stored(exc)

    def _not_stored(self, exc: StoreUnavailable) -> None:
        # The answer is already made (or on its way); this cannot reach the client.
        log.error("short_term_memory: agent %r: this turn was not stored: %s", self.agent.name,
                  self._unavailable(exc).message)


__all__ = ["ShortTermMemory"]

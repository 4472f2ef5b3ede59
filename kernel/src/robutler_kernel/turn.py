"""One request to one agent, whatever way it came in: the :class:`Turn`.

Every way into an agent (the chat routes, ``/v1/completions``, a skill's ``@http``
endpoint, a plugin route that acts for an agent, library calls, and later handoffs and the
agent-to-agent, MCP and A2A doors) builds a ``Turn`` and asks it for a completion, a stream,
or a piece of work. The turn alone:

* runs ``on_connection`` first and ``finalize_connection`` exactly once, on every path:
  success, a ``RequestError``, a crash of a hook, the deadline, the client leaving;
* owns ``request_timeout`` (a deadline fixed when the turn is made) and the client's
  disconnect (:meth:`guard`): either cancels the work, never ``finalize_connection``
  itself, which runs to its end once it has begun;
* owns the ``stream`` flag hooks read (``ctx.stream``), set by what the door asks for;
* calls the agent's observers (metrics) after ``finalize_connection``.

What stays fixed between requests (tools, prompts, hooks, models) lives on the
:class:`~robutler_kernel.agent.Agent`; what belongs to this request lives here and in its
:class:`~robutler_specs.RequestContext`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from msgspec import UNSET

from robutler_specs import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    ProviderTimeout,
    RequestContext,
)

from .loop import Outcome, converse
from .network import CHAIN_HEADER, chain_of, check_chain

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("robutler.turn")

T = TypeVar("T")
Receive = Callable[[], Awaitable[dict[str, Any]]]
Ending = Literal["timeout", "disconnect"]


class ClientGone(Exception):
    """The client went away before the answer: there is nobody to answer."""


class Answered:
    """What :meth:`Turn.serve` yields for a handler that answered with a value (not a
    stream), once ``finalize_connection`` has run."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


#: The turn whose handler is running (:meth:`Turn.run`, :meth:`Turn.serve`), so that the
#: handler can run the agent's conversation inside it (:meth:`Turn.serving`).
_serving: ContextVar[Turn | None] = ContextVar("robutler_serving_turn", default=None)


def too_slow(timeout: float) -> ProviderTimeout:
    """The 504 of a request that ran past ``server.request_timeout``."""
    return ProviderTimeout(f"the request took longer than {timeout:g} s (server.request_timeout)")


class Turn:
    """The lifecycle of one request to ``agent``.

    :param agent: the agent answering.
    :param ctx: the request's context (the door built it from what the client sent).
    :param timeout: seconds the whole request may take (``server.request_timeout``), from
        now; ``None`` for no limit (library use).
    """

    __slots__ = ("_opened", "agent", "ctx", "deadline", "ended_by", "failure", "finished", "timeout")

    def __init__(self, agent: Agent, ctx: RequestContext, *, timeout: float | None = None) -> None:
        self.agent = agent
        self.ctx = ctx
        if not ctx.chain and CHAIN_HEADER in ctx.headers:
            ctx.chain = chain_of(ctx.headers)  # a request from an agent on another server
        self.timeout = timeout
        self.deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        self._opened = False
        #: ``finalize_connection`` has begun (nothing may cancel the turn from then on).
        self.finished = False
        #: What cut the turn short, if anything: ``"timeout"`` or ``"disconnect"``.
        self.ended_by: Ending | None = None
        #: An error of the conversation a handler ran (:meth:`converse`) and answered in
        #: its own protocol: ``finalize_connection`` still gets it.
        self.failure: BaseException | None = None

    # -- both ends ----------------------------------------------------------------------

    async def open(self) -> None:
        """Run ``on_connection`` (once), after refusing a handoff loop or a chain of agents
        longer than the agent allows (then no hook runs at all)."""
        if not self._opened:
            check_chain(self.agent.spec, self.ctx.chain)
            self._opened = True
            await self.agent.hooks.on_connection(self.ctx)

    async def finish(self, error: BaseException | None = None) -> None:
        """Run ``finalize_connection`` and the observers, exactly once; later calls do
        nothing. On success call it before the answer is sent, so what it settles (cost,
        headers) is reported."""
        if self.finished:
            return
        self.finished = True
        ctx = self.ctx
        await self.agent.hooks.finalize_connection(ctx, error)
        for observe in self.agent.observers:
            try:
                observe(ctx, error)
            except Exception:
                log.exception("observer %r failed", observe)

    async def __aenter__(self) -> Turn:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.finished or not self._opened:
            return
        if kind is GeneratorExit:  # the stream's consumer closed it: the client went away
            exc = asyncio.CancelledError("client disconnected")
        elif self.ended_by == "timeout" and kind is not None and issubclass(kind, asyncio.CancelledError):
            # The deadline cut the work: hooks see the 504 the client gets, not a bare
            # cancellation (which means the client left).
            assert self.timeout is not None
            exc = too_slow(self.timeout)
        await self.finish(exc)

    # -- what a door asks for -----------------------------------------------------------

    async def run(self, work: Callable[[RequestContext], Awaitable[T]]) -> T:
        """``on_connection``, then ``work(ctx)``, then ``finalize_connection``: the shape
        of every door that is not a chat completion (``@http`` endpoints)."""
        async with self:
            await self.open()
            token = _serving.set(self)
            try:
                result = await work(self.ctx)
            finally:
                _serving.reset(token)
            await self.finish(self.failure)
            return result

    async def serve(self, work: Callable[[RequestContext], Awaitable[Any]]) -> AsyncGenerator[Any, None]:
        """As :meth:`run`, for a handler that may answer with a stream (plugin routes):
        ``work(ctx)``'s value once, as :class:`Answered`, after ``finalize_connection``;
        or, when it is an async iterator, each of its pieces as they come and then
        ``finalize_connection``. Closing this generator early (the client left) closes
        the handler's iterator, and ``finalize_connection`` runs on the way out."""
        async with self:
            await self.open()
            token = _serving.set(self)
            try:
                result = await work(self.ctx)
            finally:
                _serving.reset(token)
            if not hasattr(result, "__aiter__"):
                await self.finish(self.failure)
                yield Answered(result)
                return
            pieces: AsyncIterator[Any] = result
            empty = True
            try:
                while True:
                    # The handler's stream may start the conversation lazily: each step
                    # runs as this turn's handler (in whichever task sends the stream).
                    token = _serving.set(self)
                    try:
                        piece = await pieces.__anext__()
                    except StopAsyncIteration:
                        break
                    finally:
                        _serving.reset(token)
                    empty = False
                    yield piece
            finally:
                close = getattr(pieces, "aclose", None)
                if close is not None:
                    await close()
            if empty:
                yield b""  # the door starts the answer on the first piece
            await self.finish(self.failure)

    @staticmethod
    def serving(ctx: RequestContext) -> Turn:
        """The turn of the handler running for ``ctx`` (see :meth:`run`, :meth:`serve`).

        :raises RuntimeError: called outside such a handler, or with another request's ctx.
        """
        turn = _serving.get()
        if turn is None or turn.ctx is not ctx:
            raise RuntimeError(
                "run_request/stream_request run the conversation of the request a plugin route (or "
                "@http endpoint) is handling: call them from its handler, with the ctx it was given"
            )
        return turn

    async def converse(self) -> ChatCompletion:
        """The conversation loop on ``ctx.messages``, inside this turn (already open; the
        handler's door finishes it), as one completion. Its usage has no ``cost`` yet:
        a pricing skill settles in ``finalize_connection``, after the handler."""
        ctx = self.ctx
        ctx.stream = False
        try:
            outcome: Any = None
            async with aclosing(converse(self.agent, ctx)) as items:
                async for item in items:
                    outcome = item
        except BaseException as exc:
            self.failure = exc
            raise
        return ChatCompletion(
            id=ctx.request_id, created=ctx.created, model=self.agent.name,
            choices=[Choice(0, outcome.message, outcome.finish_reason)],
            usage=ctx.total_usage(), agent=ctx.answered_by or UNSET,
        )

    async def converse_stream(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        """As :meth:`converse`, as chunks: a role chunk, deltas, and a last chunk with
        ``finish_reason`` and ``usage`` (no ``cost`` yet)."""
        ctx = self.ctx
        ctx.stream = True
        hooks = self.agent.hooks
        rewrite = hooks.rewrites_chunks
        try:
            first = self._chunk(Delta(role="assistant", content=""))
            yield await hooks.on_chunk(ctx, first) if rewrite else first
            item: Any = None
            async with aclosing(converse(self.agent, ctx)) as items:
                async for item in items:
                    if isinstance(item, Outcome):
                        break
                    chunk = self._chunk(item)
                    yield await hooks.on_chunk(ctx, chunk) if rewrite else chunk
            final = ChatCompletionChunk(
                id=ctx.request_id, created=ctx.created, model=self.agent.name,
                choices=[ChunkChoice(0, Delta(), item.finish_reason)], usage=ctx.total_usage(),
                agent=ctx.answered_by or UNSET,
            )
            yield await hooks.on_chunk(ctx, final) if rewrite else final
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):
                self.failure = exc
            raise

    async def complete(self) -> ChatCompletion:
        """The whole conversation loop, answered as one completion."""
        ctx = self.ctx
        ctx.stream = False
        async with self:
            await self.open()
            outcome: Any = None
            async with aclosing(converse(self.agent, ctx)) as items:
                async for item in items:
                    outcome = item
            await self.finish()
            return ChatCompletion(
                id=ctx.request_id,
                created=ctx.created,
                model=self.agent.name,
                choices=[Choice(0, outcome.message, outcome.finish_reason)],
                usage=ctx.total_usage(),
                agent=ctx.answered_by or UNSET,
            )
        raise AssertionError("unreachable")  # pragma: no cover (for type checkers)

    async def stream(self, *, include_usage: bool = False) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The conversation loop as chunks: a role chunk, deltas, then a final chunk with
        ``finish_reason`` and ``usage``. With ``include_usage`` (OpenAI's ``stream_options``)
        the usage moves, as OpenAI sends it, to one more chunk with no choices: it is on
        exactly one chunk either way, so a client that adds up every chunk's usage counts
        it once. Closing the iterator early (client gone) closes the provider stream."""
        ctx = self.ctx
        ctx.stream = True
        agent = self.agent
        hooks = agent.hooks
        rewrite = hooks.rewrites_chunks
        started = False
        async with self:
            await self.open()
            item: Any = None
            async with aclosing(converse(agent, ctx)) as items:
                async for item in items:
                    if isinstance(item, Outcome):
                        break
                    if not started:
                        started = True
                        first = self._chunk(Delta(role="assistant", content=""))
                        yield await hooks.on_chunk(ctx, first) if rewrite else first
                    chunk = self._chunk(item)
                    yield await hooks.on_chunk(ctx, chunk) if rewrite else chunk
            if not started:
                yield self._chunk(Delta(role="assistant", content=""))
            await self.finish()
            usage = ctx.total_usage()
            answered = ctx.answered_by or UNSET
            final = ChatCompletionChunk(
                id=ctx.request_id,
                created=ctx.created,
                model=agent.name,
                choices=[ChunkChoice(0, Delta(), item.finish_reason)],
                usage=None if include_usage else usage,
                agent=answered,
            )
            yield await hooks.on_chunk(ctx, final) if rewrite else final
            if include_usage:
                yield ChatCompletionChunk(
                    id=ctx.request_id, created=ctx.created, model=agent.name, choices=[], usage=usage, agent=answered
                )

    def _chunk(self, delta: Delta) -> ChatCompletionChunk:
        ctx = self.ctx
        return ChatCompletionChunk(
            id=ctx.request_id, created=ctx.created, model=self.agent.name, choices=[ChunkChoice(0, delta)]
        )

    # -- time and the client ------------------------------------------------------------

    def guard(self, receive: Receive | None = None) -> Guard:
        """Hold the current task to the turn's deadline and, given the ASGI ``receive``,
        to the client staying: ``async with turn.guard(receive): ...``. Past the deadline
        the block raises a 504 (:func:`too_slow`); when the client leaves,
        :class:`ClientGone`. Once ``finalize_connection`` has begun, neither interrupts."""
        return Guard(self, receive)

    def headers(self) -> dict[str, str]:
        """The response headers of the turn: ``x-request-id``, ``x-robutler-agent`` when
        another agent answered (a handoff), and what hooks set."""
        ctx = self.ctx
        if ctx.answered_by is not None:
            return {"x-request-id": request_id(ctx), "x-robutler-agent": ctx.answered_by, **ctx.response_headers}
        return {"x-request-id": request_id(ctx), **ctx.response_headers}


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(ctx: RequestContext) -> str:
    """The request's id as answered in ``x-request-id``: the caller's own (a load balancer's,
    so that its logs and ours meet) when it sent a sane one, else the kernel's."""
    given = ctx.headers.get("x-request-id")
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return ctx.request_id


class Guard:
    """The deadline and disconnect watch of one task working for a :class:`Turn`."""

    __slots__ = ("_timer", "_watcher", "cut", "receive", "task", "turn")

    def __init__(self, turn: Turn, receive: Receive | None) -> None:
        self.turn = turn
        self.receive = receive
        self.cut = False
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Guard:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        loop = asyncio.get_running_loop()
        if self.turn.deadline is not None:
            self._timer = loop.call_at(self.turn.deadline, self._cut, "timeout")
        if self.receive is not None:
            self._watcher = loop.create_task(self._watch(self.receive))
        return self

    def _cut(self, why: Ending) -> None:
        turn = self.turn
        if turn.finished or turn.ended_by is not None or self.task.done():
            return
        turn.ended_by = why
        self.cut = True
        self.task.cancel()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._cut("disconnect")

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            # Forgotten too: the watcher's CancelledError holds its frame, which holds this
            # guard, and through it the turn; a guard still holding the watcher would make
            # that a cycle, and every request garbage for the cycle collector.
            self._watcher.cancel()
            self._watcher = None
        if not self.cut or self.task.uncancel() > 0:
            return  # not cut here (or cancelled from outside too: that wins)
        if kind is None or not issubclass(kind, asyncio.CancelledError):
            return  # the work ended on its own before the cut reached it
        if self.turn.ended_by == "disconnect":
            log.info("request %s: the client disconnected before the answer", self.turn.ctx.request_id)
            raise ClientGone() from None
        assert self.turn.timeout is not None
        raise too_slow(self.turn.timeout) from None


__all__ = ["Answered", "ClientGone", "Guard", "Turn", "request_id", "too_slow"]

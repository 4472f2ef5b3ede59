"""What every HTTP door into an agent shares, around the one :class:`~..turn.Turn`.

A door is a raw ASGI app (the chat routes are the hot path, and a stream must see the
client's disconnect itself). :class:`Door` reads the body within ``server.max_body_bytes``
(the declared ``Content-Length`` is checked before a byte is read; a chunked body is cut
at the limit), answers every failure as an OpenAI-shaped error with its status and the
request id, and says nothing to a client that left. :func:`find_agent` resolves the agent
and labels the request's metrics with it. :func:`answer_json` and :func:`answer_sse` run
a turn's work under its deadline and disconnect watch and send the answer with the
turn's headers (``x-request-id``, and what hooks set: ``X-Robutler-Cost``...).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from robutler_specs import NotFound, RequestError

from ..turn import ClientGone, Turn, request_id, too_slow
from .responses import encode, internal_error, read_body, send_error, send_json

if TYPE_CHECKING:
    from ..agent import Agent
    from ..kernel import Kernel

log = logging.getLogger("robutler.server")

T = TypeVar("T")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Where a door notes the request id, so that an error answer carries it too.
REQUEST_ID = "robutler.request_id"
#: Where a door notes the request's turn, so that an error answer carries its headers too.
TURN = "robutler.turn"
#: Where a door notes the agent, for the metrics' ``agent`` label.
AGENT = "robutler.agent"

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"


def headers_of(scope: Mapping[str, Any]) -> dict[str, str]:
    """Request headers as a dict with lower-case names (the last value wins)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


class Door:
    """Base of the HTTP doors: body within limits, errors answered, a client gone ignored.

    Subclasses implement :meth:`handle`; what they raise is answered here.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    async def body(self, scope: Scope, receive: Receive) -> bytes:
        """The request body, within ``server.max_body_bytes`` (413 past it)."""
        return await read_body(scope, receive, self.kernel.config.server.max_body_bytes)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.handle(scope, receive, send)
        except (ClientGone, ConnectionResetError):
            return
        except RequestError as exc:
            await self._error(scope, send, exc)
        except Exception as exc:
            await self._error(scope, send, internal_error(exc))

    @staticmethod
    async def _error(scope: Scope, send: Send, error: RequestError) -> None:
        request_id = scope.get(REQUEST_ID)
        if request_id is not None:
            error.headers = {**error.headers, "x-request-id": request_id}
        turn = scope.get(TURN)
        if turn is not None and turn.ctx.response_headers:
            # What finalize_connection reported (the cost of what ran before the error).
            error.headers = {**turn.ctx.response_headers, **error.headers}
        await send_error(send, error)

    def turn(self, scope: Scope, agent: Agent, ctx: Any) -> Turn:
        """A turn for ``ctx`` under ``server.request_timeout``, its id noted for errors."""
        scope[REQUEST_ID] = request_id(ctx)
        turn = scope[TURN] = Turn(agent, ctx, timeout=self.kernel.config.server.request_timeout)
        return turn


async def find_agent(kernel: Kernel, scope: MutableMapping[str, Any], name: str, *, param: str | None = None) -> Agent:
    """The agent called ``name`` (starting the kernel on first use), or a 404 that lists
    the agents; the request's metrics are labelled with it."""
    if not kernel.started:
        await kernel.startup()
    agent = await kernel.get_agent(name)
    if agent is None:
        known = ", ".join(kernel.listed_agent_names()) or "none"
        error = NotFound(
            f"no agent named {name!r} (agents: {known})",
            param=param,
            code="model_not_found" if param == "model" else "agent_not_found",
        )
        if param == "model":
            error.type = "invalid_request_error"  # type: ignore[misc]  # as OpenAI's model_not_found
        raise error
    scope[AGENT] = agent.name
    return agent


async def answer_json(
    turn: Turn, work: Awaitable[T], render: Callable[[T], bytes], receive: Receive, send: Send
) -> None:
    """Run ``work`` (the turn's) under the turn's deadline and disconnect watch, then send
    ``render(result)`` as a 200 JSON answer with the turn's headers."""
    async with turn.guard(receive):
        result = await work
    await send_json(send, 200, render(result), turn.headers())


def frame(chunk: Any) -> bytes:
    """One SSE event."""
    return b"data: " + encode(chunk) + b"\n\n"


def error_frame(error: RequestError) -> bytes:
    """The event of an error after the stream began: ``{"error": ...}``."""
    return frame(error.to_body())


async def answer_sse(
    turn: Turn,
    chunks: AsyncGenerator[Any, None],
    receive: Receive,
    send: Send,
    *,
    render: Callable[[Any], bytes] = frame,
    render_error: Callable[[RequestError], bytes] = error_frame,
    done: bytes = DONE,
) -> None:
    """Stream ``chunks`` (the turn's) as server-sent events, ``done`` (``[DONE]``) last.

    Nothing is sent before the first chunk exists: an error up to there (auth, payment,
    provider down) still gets its own status and a JSON body. After it, an error is
    ``render_error(error)`` (an ``{"error": ...}`` event) and ``done``. Another protocol's
    door (the Responses API: typed events, no ``[DONE]``) passes its own ``render``,
    ``render_error`` and ``done``. A producer task runs the chunks into a buffer
    under the turn's guard; this task sends whatever is buffered in one write (chunks that
    arrive together leave together: one ASGI send per chunk costs more than the kernel's own
    work on a chunk), and the chunks buffered when the stream ends leave with its end
    (``done``) in the last write. When the client leaves, the guard cancels the producer,
    which closes the chunks and with them the upstream request; ``finalize_connection``
    runs on its way out.
    """
    frames: deque[bytes] = deque()
    ready = asyncio.Event()
    outcome: dict[str, Any] = {"done": False, "error": None, "gone": False}

    async def produce() -> None:
        # One task runs the chunks under the turn's guard from the first to the last (one
        # deadline timer, one disconnect watch per stream).
        try:
            async with turn.guard(receive):
                async for chunk in chunks:
                    frames.append(render(chunk))
                    ready.set()
        except ClientGone:
            outcome["gone"] = True
        except Exception as exc:
            outcome["error"] = exc
        finally:
            outcome["done"] = True
            ready.set()

    producer = asyncio.create_task(produce())
    started = False
    try:
        while True:
            await ready.wait()
            ready.clear()
            if outcome["gone"]:
                return
            if not started:
                if not frames and outcome["error"] is not None:
                    raise outcome["error"]  # before the first chunk: its own status, a JSON body
                headers = [*SSE_HEADERS]
                headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in turn.headers().items())
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                started = True
            if outcome["done"]:
                break  # what is buffered leaves with the end, in the same write
            if frames:
                body = b"".join(frames)
                frames.clear()
                await send({"type": "http.response.body", "body": body, "more_body": True})
        rest = b"".join(frames)
        exc = outcome["error"]
        if exc is None:
            await send({"type": "http.response.body", "body": rest + done, "more_body": False})
            return
        error = exc if isinstance(exc, RequestError) else internal_error(exc)
        log.warning("stream ended with an error: %s", error.message)
        await send({"type": "http.response.body", "body": rest + render_error(error) + done, "more_body": False})
    finally:
        if not producer.done():
            producer.cancel()
        # The producer finalizes the request (finalize_connection) on its way out: wait for
        # it, even if this task is being cancelled.
        await asyncio.shield(asyncio.gather(producer, return_exceptions=True))
        await chunks.aclose()


__all__ = [
    "AGENT",
    "REQUEST_ID",
    "Door",
    "answer_json",
    "answer_sse",
    "error_frame",
    "find_agent",
    "frame",
    "headers_of",
    "too_slow",
]

"""``POST /{agent}/chat/completions`` and ``POST /v1/chat/completions``, JSON and SSE."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from robutler_specs import (
    FORWARDED_PARAMS,
    BadRequest,
    ChatCompletionChunk,
    ChatCompletionRequest,
    NotFound,
    ProviderTimeout,
    RequestContext,
    RequestError,
)

from .responses import decode_error, encode, internal_error, read_body, send_error, send_json

if TYPE_CHECKING:
    from ..agent import Agent
    from ..kernel import Kernel

log = logging.getLogger("robutler.server")

_decoder = msgspec.json.Decoder(ChatCompletionRequest)

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"


def headers_of(scope: Mapping[str, Any]) -> dict[str, str]:
    """Request headers as a dict with lower-case names (the last value wins)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def params_of(request: Any) -> dict[str, Any]:
    """The LLM parameters a request sets."""
    params = {}
    for name in FORWARDED_PARAMS:
        value = getattr(request, name, None)
        if value is not None:
            params[name] = value
    return params


class ChatEndpoint:
    """The chat completions endpoint as a raw ASGI app.

    :param kernel: the kernel serving the agents.
    :param by_model: take the agent name from the body's ``model`` (the ``/v1`` route)
        instead of the ``agent`` path parameter.
    """

    def __init__(self, kernel: Kernel, *, by_model: bool) -> None:
        self.kernel = kernel
        self.by_model = by_model

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            request = await self._request(scope, receive)
            agent = await self._agent(scope, request)
            ctx = RequestContext(
                agent.spec,
                request.messages,
                params=params_of(request),
                client_tools=request.tools,
                stream=request.stream,
                headers=headers_of(scope),
                # On /v1 the ``model`` field names the agent; on /{agent} it may pick a model.
                requested_model=None if self.by_model else request.model,
            )
            if request.stream:
                include_usage = bool(request.stream_options and request.stream_options.include_usage)
                await self._stream(agent, ctx, include_usage, receive, send)
            else:
                await self._complete(agent, ctx, receive, send)
        except RequestError as exc:
            await send_error(send, exc)
        except ConnectionResetError:
            return
        except Exception as exc:
            await send_error(send, internal_error(exc))

    async def _request(self, scope: dict[str, Any], receive: Any) -> ChatCompletionRequest:
        body = await read_body(scope, receive, self.kernel.config.server.max_body_bytes)
        try:
            request = _decoder.decode(body)
        except msgspec.MsgspecError as exc:
            raise decode_error(exc, "chat completion request") from None
        if not request.messages:
            raise BadRequest("messages must contain at least one message", param="messages")
        if request.n not in (None, 1):
            raise BadRequest("only n=1 is supported", param="n")
        return request

    async def _agent(self, scope: dict[str, Any], request: ChatCompletionRequest) -> Agent:
        if self.by_model:
            name = request.model
            if not name:
                raise BadRequest("model is required: set it to the agent's name", param="model")
        else:
            name = scope["path_params"]["agent"]
        if not self.kernel.started:
            await self.kernel.startup()
        agent = await self.kernel.get_agent(name)
        if agent is None:
            known = ", ".join(self.kernel.agent_names) or "none"
            raise NotFound(
                f"no agent named {name!r} (agents: {known})",
                param="model" if self.by_model else None,
                code="model_not_found" if self.by_model else "agent_not_found",
            )
        scope["robutler.agent"] = agent.name
        return agent

    async def _complete(self, agent: Agent, ctx: RequestContext, receive: Any, send: Any) -> None:
        timeout = self.kernel.config.server.request_timeout
        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def watch() -> None:
            # A client that leaves before the answer cancels the work (and the upstream call).
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        watcher = asyncio.create_task(watch())
        try:
            async with asyncio.timeout(timeout):
                completion = await agent.complete(ctx)
        except TimeoutError:
            raise too_slow(timeout) from None
        except asyncio.CancelledError:
            if not gone:
                raise
            task.uncancel()
            log.info("client disconnected before the answer")
            return
        finally:
            watcher.cancel()
        headers = {"x-request-id": ctx.request_id, **ctx.response_headers}
        await send_json(send, 200, encode(completion), headers)

    async def _stream(
        self, agent: Agent, ctx: RequestContext, include_usage: bool, receive: Any, send: Any
    ) -> None:
        timeout = self.kernel.config.server.request_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        chunks = agent.stream(ctx, include_usage=include_usage)
        try:
            # Nothing is sent before the first chunk exists: an error up to here (auth,
            # payment, provider down) still gets its own status and a JSON body.
            async with asyncio.timeout_at(deadline):
                first = await chunks.__anext__()
        except TimeoutError:
            await chunks.aclose()
            raise too_slow(timeout) from None
        except BaseException:
            await chunks.aclose()
            raise
        headers = [*SSE_HEADERS, (b"x-request-id", ctx.request_id.encode())]
        headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in ctx.response_headers.items())
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await pump(chunks, first, receive, send, deadline=deadline, timeout=timeout)


def _frame(chunk: ChatCompletionChunk) -> bytes:
    return b"data: " + encode(chunk) + b"\n\n"


def too_slow(timeout: float) -> ProviderTimeout:
    """The 504 of a request that ran past ``server.request_timeout``."""
    return ProviderTimeout(f"the request took longer than {timeout:g} s (server.request_timeout)")


async def pump(
    chunks: AsyncGenerator[ChatCompletionChunk, None],
    first: ChatCompletionChunk,
    receive: Any,
    send: Any,
    *,
    deadline: float | None = None,
    timeout: float = 0.0,
) -> None:
    """Send chunks as SSE until done, the client leaves, or an error (sent as an error event).

    A producer task runs the chunk iterator into a buffer; this task sends whatever is
    buffered in one write (chunks that arrive together leave together: one ASGI send per
    chunk costs more than the kernel's own work on a chunk). A watcher task waits for
    ``http.disconnect`` and cancels the producer, which closes the iterator and with it the
    upstream request; ``finalize_connection`` runs in the iterator's ``finally``.
    """
    frames: deque[bytes] = deque([_frame(first)])
    ready = asyncio.Event()
    ready.set()
    outcome: dict[str, Any] = {"done": False, "error": None, "gone": False}

    async def produce() -> None:
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in chunks:
                    frames.append(_frame(chunk))
                    ready.set()
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            outcome["error"] = too_slow(timeout)
        except Exception as exc:
            outcome["error"] = exc
        finally:
            outcome["done"] = True
            ready.set()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        outcome["gone"] = True
        producer.cancel()
        ready.set()

    producer = asyncio.create_task(produce())
    watcher = asyncio.create_task(watch())
    try:
        while True:
            await ready.wait()
            ready.clear()
            if outcome["gone"]:
                log.info("client disconnected mid-stream")
                return
            if frames:
                body = b"".join(frames)
                frames.clear()
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if outcome["done"] and not frames:
                break
        exc = outcome["error"]
        if exc is None:
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
            return
        error = exc if isinstance(exc, RequestError) else internal_error(exc)
        log.warning("stream ended with an error: %s", error.message)
        await send({"type": "http.response.body", "body": _frame_error(error) + DONE, "more_body": False})
    finally:
        watcher.cancel()
        if not producer.done():
            producer.cancel()
        # The producer finalizes the request (finalize_connection) on its way out: wait for
        # it, even if this task is being cancelled.
        await asyncio.shield(asyncio.gather(producer, return_exceptions=True))
        await chunks.aclose()


def _frame_error(error: RequestError) -> bytes:
    return b"data: " + encode(error.to_body()) + b"\n\n"

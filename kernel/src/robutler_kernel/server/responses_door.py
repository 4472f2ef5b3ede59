"""The OpenAI Responses API: ``POST /v1/responses`` (``model`` = agent) and
``POST /{agent}/responses``, JSON or SSE; ``GET`` and ``DELETE`` of stored responses.

A thin door onto the agent's :class:`~..turn.Turn`, like the chat door: the body limit,
the decoding (400s naming the field), the agent, a :class:`RequestContext` built from the
input items (``responses_map``), then ``turn.complete()`` or ``turn.stream()`` rendered as
a Response or as Responses events. ``GET``/``DELETE`` run through ``turn.run`` so the
agent's ``on_connection`` (auth) decides who is calling: only the identity that created a
stored response (``ctx.identity.user_id``) may read, delete or continue it; anyone else
gets the 404 of a response that does not exist. An ``item_reference`` in ``input`` is the
item of a stored response its id names (:func:`..responses_map.item_ids`), under the same rule.

Stored responses live in the kernel's state store (``responses:<id>``, JSON by msgspec,
``server.responses_ttl``), so replicas sharing Redis share them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import msgspec

from robutler_specs import BadRequest, Message, NotFound, RequestContext
from robutler_specs.responses import (
    DeletedResponse,
    InputItem,
    Response,
    ResponsesRequest,
    StoredResponse,
    StreamEvent,
    TextConfig,
    TextFormat,
)

from .. import responses_map as rmap
from ..turn import Turn, request_id
from .door import REQUEST_ID, Door, Receive, Scope, Send, answer_json, answer_sse, find_agent, headers_of
from .responses import check_depth, decode_error, encode

if TYPE_CHECKING:
    from ..agent import Agent
    from ..kernel import Kernel

log = logging.getLogger("robutler.responses")

_decoder = msgspec.json.Decoder(ResponsesRequest)
_stored_decoder = msgspec.json.Decoder(StoredResponse)
_encoder = msgspec.json.Encoder()

#: The key prefix of stored responses in the kernel's state store.
KEY_PREFIX = "responses:"


class Missing(NotFound):
    """404 as OpenAI answers it: an ``invalid_request_error`` (unknown model, response)."""

    type = "invalid_request_error"


def decode_responses(body: bytes) -> ResponsesRequest:
    """A Responses request from its JSON body, or a 400 that names the field."""
    check_depth(body, "responses request")
    try:
        request = _decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise decode_error(exc, "responses request") from None
    if isinstance(request.input, list):
        for i, item in enumerate(request.input):
            if item.arguments is not None:
                check_depth(item.arguments, "responses request", field=f"input[{i}].arguments")
    if not request.input and request.previous_response_id is None:
        raise BadRequest("input is required: a string or a list of items", param="input")
    if request.background:
        raise BadRequest("background responses are not supported; leave background unset", param="background")
    if request.conversation is not None:
        raise BadRequest("conversation is not supported; continue with previous_response_id",
                         param="conversation")
    return request


def _key(response_id: str) -> str:
    return KEY_PREFIX + response_id


async def load(kernel: Kernel, response_id: str) -> StoredResponse | None:
    """The stored response ``response_id`` (``None``: never stored, expired or deleted)."""
    raw = await kernel.state_store.get(_key(response_id))
    if raw is None:
        return None
    try:
        return _stored_decoder.decode(raw)
    except msgspec.MsgspecError:
        log.warning("stored response %s cannot be read; ignoring it", response_id)
        return None


async def save(kernel: Kernel, stored: StoredResponse) -> None:
    """Store ``stored`` for ``server.responses_ttl`` seconds. A store that fails is
    logged, not the request's failure: the answer was produced (and paid for)."""
    try:
        await kernel.state_store.set(_key(stored.response.id), _encoder.encode(stored),
                                     kernel.config.server.responses_ttl)
    except Exception as exc:
        log.warning("response %s was not stored: %s", stored.response.id, exc)


def not_found(response_id: str, param: str | None = None) -> Missing:
    """The 404 of a response that does not exist (or is not the caller's)."""
    if param == "previous_response_id":
        return Missing(f"Previous response with id {response_id!r} not found.", param=param,
                       code="previous_response_not_found")
    return Missing(f"Response with id {response_id!r} not found.", param=param, code="response_not_found")


def owned(stored: StoredResponse | None, ctx: RequestContext, agent: str | None = None) -> bool:
    """Whether the caller of ``ctx`` may see ``stored`` (the same ``user_id``; and, on an
    agent's own route, a response of that agent)."""
    return (stored is not None and stored.owner == ctx.identity.user_id
            and (agent is None or stored.response.model == agent))


class _ResponsesTurn(Turn):
    """A turn that, right after ``on_connection`` (so the caller is known), checks that
    the ``previous_response_id`` it continues is the caller's."""

    __slots__ = ("check",)

    def __init__(self, agent: Agent, ctx: RequestContext, check: Callable[[RequestContext], None],
                 *, timeout: float | None = None) -> None:
        super().__init__(agent, ctx, timeout=timeout)
        self.check = check

    async def open(self) -> None:
        first = not self._opened
        await super().open()
        if first:
            self.check(self.ctx)


def _sse(event: StreamEvent) -> bytes:
    # Responses framing: the event's type on an ``event:`` line, no ``[DONE]``.
    data = _encoder.encode(event)
    return b"event: " + event.__struct_config__.tag.encode() + b"\ndata: " + data + b"\n\n"  # type: ignore[union-attr]


def render_events(events: list[StreamEvent]) -> bytes:
    """Responses events as server-sent events."""
    return b"".join(_sse(event) for event in events)


class ResponsesDoor(Door):
    """``POST /v1/responses`` (``by_model``: the body's ``model`` names the agent) and
    ``POST /{agent}/responses``."""

    def __init__(self, kernel: Any, *, by_model: bool) -> None:
        super().__init__(kernel)
        self.by_model = by_model

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = decode_responses(await self.body(scope, receive))
        if self.by_model:
            if not request.model:
                raise BadRequest("model is required: set it to the agent's name", param="model")
            agent = await self._agent(scope, request.model, "model")
        else:
            agent = await self._agent(scope, scope["path_params"]["agent"], None)
        kernel = self.kernel
        new_items = rmap.input_items(request.input)
        references = await self._references(new_items)
        history: list[InputItem] = []
        previous: StoredResponse | None = None
        previous_id = request.previous_response_id
        if previous_id is not None:
            previous = await load(kernel, previous_id)
            if previous is not None:
                history = previous.conversation + rmap.conversation_items(previous.response.output)
        messages = rmap.messages_of(history, field="previous_response_id")
        if all(found is not None for _, found, _ in references.values()):
            new_items = [references[i][1] or item if i in references else item
                         for i, item in enumerate(new_items)]
            messages += rmap.messages_of(new_items, known_calls=rmap.calls_in(history))
        # else the request ends with check()'s 404, once on_connection has named the caller
        if request.instructions:
            messages.insert(0, Message(role="system", content=request.instructions))
        client_tools = rmap.tool_definitions(request.tools)
        ctx = RequestContext(
            agent.spec,
            messages,
            params=rmap.params_of(request),
            client_tools=client_tools,
            stream=request.stream,
            headers=headers_of(scope),
            request_id=rmap.new_id("resp"),
            # On /v1 the ``model`` field names the agent; on /{agent} it may pick a model.
            requested_model=None if self.by_model else request.model,
        )

        def check(ctx: RequestContext) -> None:
            if previous_id is not None and not owned(previous, ctx):
                raise not_found(previous_id, "previous_response_id")
            for i, (item_id, _, stored) in references.items():
                if not owned(stored, ctx):
                    raise Missing(f"Item with id {item_id!r} not found.", param=f"input[{i}].id",
                                  code="item_not_found")

        scope[REQUEST_ID] = request_id(ctx)
        turn = _ResponsesTurn(agent, ctx, check, timeout=kernel.config.server.request_timeout)
        ids = rmap.item_ids(ctx.request_id)
        base = Response(
            id=ctx.request_id,
            created_at=ctx.created,
            model=agent.name,
            status="in_progress",
            instructions=request.instructions,
            max_output_tokens=request.max_output_tokens,
            metadata=request.metadata or {},
            parallel_tool_calls=request.parallel_tool_calls is not False,
            previous_response_id=previous_id,
            store=request.store,
            temperature=request.temperature,
            text=request.text or TextConfig(format=TextFormat(type="text")),
            tool_choice=request.tool_choice or "auto",
            tools=list(request.tools or ()),
            top_p=request.top_p,
            user=request.user,
        )
        conversation = history + new_items

        async def keep(response: Response) -> None:
            if request.store:  # the owner is who on_connection said is calling
                await save(kernel, StoredResponse(response, conversation, owner=ctx.identity.user_id))

        if request.stream:
            events = rmap.ResponseEvents(base, time.time, ids)
            await answer_sse(
                turn, self._events(turn, events, keep), receive, send,
                render=render_events, render_error=lambda error: render_events(events.fail(error)), done=b"",
            )
        else:
            await answer_json(turn, self._complete(turn, base, keep, ids), encode, receive, send)

    async def _references(
        self, items: list[InputItem]
    ) -> dict[int, tuple[str, InputItem | None, StoredResponse | None]]:
        """For each ``item_reference`` among ``items``, by index: its id, the output item of
        the stored response that id names, and that response (``None``, ``None``: no such
        item). The Vercel AI SDK sends the model's earlier text this way when ``store`` is on."""
        wanted: dict[int, str] = {}
        for i, item in enumerate(items):
            if item.type == "item_reference":
                if not item.id:
                    raise BadRequest(f"input[{i}].id is required for an item_reference", param=f"input[{i}].id")
                wanted[i] = item.id
        if not wanted:
            return {}
        names = sorted({rid for item_id in wanted.values() if (rid := rmap.response_id_of(item_id))})
        found: dict[str, tuple[InputItem, StoredResponse]] = {}
        for stored in await asyncio.gather(*(load(self.kernel, rid) for rid in names)):
            if stored is not None:
                found.update((item.id or "", (item, stored))
                             for item in rmap.conversation_items(stored.response.output))
        return {i: (item_id, *found.get(item_id, (None, None))) for i, item_id in wanted.items()}

    async def _agent(self, scope: Scope, name: str, param: str | None) -> Agent:
        try:
            return await find_agent(self.kernel, scope, name, param=param)
        except NotFound as exc:
            raise Missing(exc.message, param=exc.param, code=exc.code) from None

    @staticmethod
    async def _complete(turn: Turn, base: Response, keep: Callable[[Response], Any],
                        ids: Callable[[str], str]) -> Response:
        completion = await turn.complete()
        response = rmap.response_of(base, completion, int(time.time()), ids)
        await keep(response)
        return response

    @staticmethod
    async def _events(turn: Turn, events: rmap.ResponseEvents,
                      keep: Callable[[Response], Any]) -> AsyncGenerator[list[StreamEvent], None]:
        async with aclosing(turn.stream()) as chunks:
            async for chunk in chunks:
                out = events.feed(chunk)
                if events.done:
                    # Stored before the client reads response.completed, so that its next
                    # request with previous_response_id finds it.
                    await keep(events.response)
                if out:
                    yield out


class StoredResponseDoor(Door):
    """``GET`` and ``DELETE`` of ``/v1/responses/{response_id}`` (the agent is the one that
    made the response) and ``/{agent}/responses/{response_id}``, through the agent's turn."""

    def __init__(self, kernel: Any, *, by_model: bool) -> None:
        super().__init__(kernel)
        self.by_model = by_model

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        kernel = self.kernel
        response_id: str = scope["path_params"]["response_id"]
        if self.by_model:
            if not kernel.started:
                await kernel.startup()
            found = await load(kernel, response_id)
            if found is None:
                raise not_found(response_id)
            agent = await find_agent(kernel, scope, found.response.model)
            only: str | None = None
        else:
            agent = await find_agent(kernel, scope, scope["path_params"]["agent"])
            only = agent.name
        delete = scope["method"] == "DELETE"

        async def work(ctx: RequestContext) -> bytes:
            stored = await load(kernel, response_id)
            if not owned(stored, ctx, only):
                raise not_found(response_id)
            assert stored is not None
            if delete:
                await kernel.state_store.delete(_key(response_id))
                return encode(DeletedResponse(response_id))
            return encode(stored.response)

        ctx = RequestContext(agent.spec, [], headers=headers_of(scope), request_id=f"req_{uuid.uuid4().hex}")
        turn = self.turn(scope, agent, ctx)
        await answer_json(turn, turn.run(work), _same, receive, send)


def _same(body: bytes) -> bytes:
    return body


__all__ = [
    "KEY_PREFIX",
    "Missing",
    "ResponsesDoor",
    "StoredResponseDoor",
    "decode_responses",
    "load",
    "not_found",
    "owned",
    "render_events",
    "save",
]

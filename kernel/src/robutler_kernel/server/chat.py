"""``POST /{agent}/chat/completions`` and ``POST /v1/chat/completions``, JSON and SSE."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from robutler_specs import (
    FORWARDED_PARAMS,
    BadRequest,
    ChatCompletion,
    ChatCompletionRequest,
    RequestContext,
    ToolCall,
    Usage,
)

from .door import Door, Receive, Scope, Send, answer_json, answer_sse, find_agent, headers_of
from .responses import check_depth, decode_error, encode

_decoder = msgspec.json.Decoder(ChatCompletionRequest)


def params_of(request: Any) -> dict[str, Any]:
    """The LLM parameters a request sets."""
    params = {}
    for name in FORWARDED_PARAMS:
        value = getattr(request, name, None)
        if value is not None:
            params[name] = value
    return params


def decode_chat(body: bytes) -> ChatCompletionRequest:
    """A chat completion request from its JSON body, or a 400 that names the field."""
    check_depth(body, "chat completion request")
    try:
        request = _decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise decode_error(exc, "chat completion request") from None
    for i, message in enumerate(request.messages):
        for j, call in enumerate(message.tool_calls or ()):
            field = f"messages[{i}].tool_calls[{j}].function.arguments"
            check_depth(call.function.arguments, "chat completion request", field=field)
    if not request.messages:
        raise BadRequest("messages must contain at least one message", param="messages")
    if request.n not in (None, 1):
        raise BadRequest("only n=1 is supported", param="n")
    if request.stream_options is not None and not request.stream:
        raise BadRequest("stream_options is only allowed when stream is true", param="stream_options")
    return request


class _Message(msgspec.Struct):
    """An answer's message as OpenAI writes it: ``content`` and ``refusal`` always there
    (``null`` beside tool calls), ``tool_calls`` only when there are some."""

    role: str
    content: str | list[dict[str, Any]] | None
    refusal: None = None
    tool_calls: list[ToolCall] | UnsetType = UNSET


class _Choice(msgspec.Struct):
    index: int
    message: _Message
    finish_reason: str | None
    logprobs: None = None


class _Completion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[_Choice]
    usage: Usage
    object: str = "chat.completion"
    agent: str | UnsetType = UNSET


def render_completion(completion: ChatCompletion) -> bytes:
    """A completion's JSON body, in OpenAI's exact shape."""
    return encode(
        _Completion(
            completion.id, completion.created, completion.model,
            [
                _Choice(c.index, _Message(c.message.role, c.message.content, tool_calls=c.message.tool_calls or UNSET),
                        c.finish_reason)
                for c in completion.choices
            ],
            completion.usage, completion.object, completion.agent,
        )
    )


class ChatDoor(Door):
    """The chat completions endpoint as a raw ASGI app.

    :param kernel: the kernel serving the agents.
    :param by_model: take the agent name from the body's ``model`` (the ``/v1`` route)
        instead of the ``agent`` path parameter.
    """

    def __init__(self, kernel: Any, *, by_model: bool) -> None:
        super().__init__(kernel)
        self.by_model = by_model

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = decode_chat(await self.body(scope, receive))
        if self.by_model:
            if not request.model:
                raise BadRequest("model is required: set it to the agent's name", param="model")
            agent = await find_agent(self.kernel, scope, request.model, param="model")
        else:
            agent = await find_agent(self.kernel, scope, scope["path_params"]["agent"])
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
        turn = self.turn(scope, agent, ctx)
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            await answer_sse(turn, turn.stream(include_usage=include_usage), receive, send)
        else:
            await answer_json(turn, turn.complete(), render_completion, receive, send)


__all__ = ["ChatDoor", "decode_chat", "params_of", "render_completion"]

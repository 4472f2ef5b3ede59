"""``POST /v1/completions``: OpenAI's legacy text-completion API (V1 compatibility), as a
thin adapter onto the one :class:`~..turn.Turn`.

The prompt is one user message to an agent; the answer is the agent's reply in the
``text_completion`` shape, as JSON or, with ``stream``, as legacy chunks (``choices[].text``)
and ``[DONE]``. ``model`` names the agent; without it the server's default agent answers
(``server.default_agent``, else the only agent). What an agent cannot honestly do (a batch
of prompts, ``echo``, ``suffix``, ``logprobs``, ``n`` > 1) is a 400 that says so, never
silently ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from robutler_specs import BadRequest, ChatCompletion, ChatCompletionChunk, Message, NotFound, RequestContext
from robutler_specs.wire import StreamOptions

from .door import Door, Receive, Scope, Send, answer_json, answer_sse, find_agent, headers_of
from .responses import check_depth, decode_error, encode

if TYPE_CHECKING:
    from ..agent import Agent


class LegacyCompletionRequest(msgspec.Struct, omit_defaults=True):
    """The body of ``POST /v1/completions`` as OpenAI's legacy API defines it. ``prompt``
    is checked by hand (:func:`prompt_text`): a string, or a list of one string."""

    prompt: Any = None
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    best_of: int | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    logit_bias: dict[str, float] | None = None


_decoder = msgspec.json.Decoder(LegacyCompletionRequest)

#: The request fields passed on to the model as LLM parameters.
_PARAMS = ("max_tokens", "temperature", "top_p", "stop", "seed", "user", "presence_penalty", "frequency_penalty")


def prompt_text(prompt: Any) -> str:
    """The text of ``prompt``: a string, or a list holding one string; else a 400."""
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        raise BadRequest("prompt is required: the text the agent answers", param="prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        raise BadRequest(
            f"prompt is a list of {len(prompt)} prompts, which asks for a batch of completions; "
            "an agent answers one prompt per request: send one request per prompt",
            param="prompt",
        )
    if isinstance(prompt, list) and prompt and all(isinstance(p, int | list) for p in prompt):
        raise BadRequest("prompt as token ids is not supported: send the text", param="prompt")
    raise BadRequest("prompt must be a string (or a list of one string)", param="prompt")


def decode_legacy(body: bytes) -> tuple[LegacyCompletionRequest, str]:
    """The request and its prompt text, or a 400 naming the field that cannot be honoured."""
    check_depth(body, "completion request")
    try:
        request = _decoder.decode(body)
    except msgspec.MsgspecError as exc:
        raise decode_error(exc, "completion request") from None
    prompt = prompt_text(request.prompt)
    if request.echo:
        raise BadRequest(
            "echo is not supported: the prompt goes to an agent as a user message and the answer "
            "is the agent's reply, not a continuation of the prompt; prepend the prompt yourself",
            param="echo",
        )
    if request.n not in (None, 1):
        raise BadRequest("only n=1 is supported", param="n")
    if request.best_of not in (None, 1):
        raise BadRequest("only best_of=1 is supported", param="best_of")
    if request.suffix:
        raise BadRequest("suffix (text insertion) is not supported", param="suffix")
    if request.logprobs is not None:
        raise BadRequest("logprobs are not available from an agent", param="logprobs")
    if request.logit_bias:
        raise BadRequest("logit_bias is not supported", param="logit_bias")
    if request.stream_options is not None and not request.stream:
        raise BadRequest("stream_options is only allowed when stream is true", param="stream_options")
    return request, prompt


def _legacy_id(request_id: str) -> str:
    return request_id.replace("chatcmpl-", "cmpl-", 1)


def text_completion(chat: ChatCompletion) -> bytes:
    """A chat completion in the legacy ``text_completion`` shape."""
    choice = chat.choices[0]
    return encode(
        {
            "id": _legacy_id(chat.id),
            "object": "text_completion",
            "created": chat.created,
            "model": chat.model,
            "choices": [{"text": choice.message.text(), "index": 0, "logprobs": None, "finish_reason": choice.finish_reason}],
            "usage": chat.usage,
        }
    )


def text_chunk(chunk: ChatCompletionChunk) -> bytes:
    """A chat chunk as a legacy completion chunk (one SSE event). A chunk with no text and
    no ending (the role chunk, an agent's own tool call) sends nothing, as OpenAI's legacy
    stream has no such chunks."""
    legacy: dict[str, Any] = {
        "id": _legacy_id(chunk.id),
        "object": "text_completion",
        "created": chunk.created,
        "model": chunk.model,
        "choices": [],
    }
    if chunk.choices:
        choice = chunk.choices[0]
        text = choice.delta.content or ""
        if not text and choice.finish_reason is None:
            return b""
        legacy["choices"] = [{"text": text, "index": 0, "logprobs": None, "finish_reason": choice.finish_reason}]
    if chunk.usage is not msgspec.UNSET and chunk.usage is not None:
        legacy["usage"] = chunk.usage
    return b"data: " + encode(legacy) + b"\n\n"


async def default_agent(door: Door, scope: Scope) -> Agent:
    """The agent of a request that names none: ``server.default_agent``, else the only
    agent the server has, else a 400 listing the agents."""
    kernel = door.kernel
    if not kernel.started:
        await kernel.startup()
    name = kernel.config.server.default_agent
    if name is not None:
        try:
            return await find_agent(kernel, scope, name)
        except NotFound:
            known = ", ".join(kernel.agent_names) or "none"
            raise NotFound(
                f"server.default_agent names {name!r}, which is not an agent of this server (agents: {known}); "
                "set model to the agent's name, or fix server.default_agent",
                param="model",
                code="model_not_found",
            ) from None
    names = kernel.agent_names
    if len(names) == 1:
        return await find_agent(kernel, scope, names[0])
    raise BadRequest(
        f"model is required: this server has {len(names)} agents ({', '.join(names) or 'none'}) and no "
        "server.default_agent; set model to the agent's name",
        param="model",
    )


class CompletionsDoor(Door):
    """The prompt is one user message to the agent named by ``model`` (or the default)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        legacy, prompt = decode_legacy(await self.body(scope, receive))
        if legacy.model:
            agent = await find_agent(self.kernel, scope, legacy.model, param="model")
        else:
            agent = await default_agent(self, scope)
        params: dict[str, Any] = {k: getattr(legacy, k) for k in _PARAMS if getattr(legacy, k) is not None}
        ctx = RequestContext(
            agent.spec, [Message(role="user", content=prompt)], params=params, stream=legacy.stream, headers=headers_of(scope)
        )
        turn = self.turn(scope, agent, ctx)
        if legacy.stream:
            include_usage = bool(legacy.stream_options and legacy.stream_options.include_usage)
            await answer_sse(turn, turn.stream(include_usage=include_usage), receive, send, render=text_chunk)
        else:
            await answer_json(turn, turn.complete(), text_completion, receive, send)


__all__ = ["CompletionsDoor", "LegacyCompletionRequest", "decode_legacy", "prompt_text", "text_chunk", "text_completion"]

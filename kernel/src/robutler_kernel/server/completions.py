"""``POST /v1/completions``: legacy text completion (V1 compatibility), through a Turn."""

from __future__ import annotations

from typing import Any

import msgspec

from robutler_specs import BadRequest, ChatCompletion, Message, RequestContext
from robutler_specs.wire import CompletionRequest

from .door import Door, Receive, Scope, Send, answer_json, find_agent, headers_of
from .responses import check_depth, decode_error, encode

_decoder = msgspec.json.Decoder(CompletionRequest)

_PARAMS = ("max_tokens", "temperature", "top_p", "stop", "seed", "user")


def text_completion(chat: ChatCompletion) -> bytes:
    """A chat completion in the legacy ``text_completion`` shape."""
    choice = chat.choices[0]
    return encode(
        {
            "id": chat.id.replace("chatcmpl-", "cmpl-"),
            "object": "text_completion",
            "created": chat.created,
            "model": chat.model,
            "choices": [{"index": 0, "text": choice.message.text(), "finish_reason": choice.finish_reason, "logprobs": None}],
            "usage": chat.usage,
        }
    )


class CompletionsDoor(Door):
    """The prompt is one user message to the agent named by ``model``."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self.body(scope, receive)
        check_depth(body, "completion request")
        try:
            legacy = _decoder.decode(body)
        except msgspec.MsgspecError as exc:
            raise decode_error(exc, "completion request") from None
        if legacy.stream:
            raise BadRequest("stream is not supported on /v1/completions; use /v1/chat/completions", param="stream")
        if not legacy.model:
            raise BadRequest("model is required: set it to the agent's name", param="model")
        agent = await find_agent(self.kernel, scope, legacy.model, param="model")
        prompt = legacy.prompt if isinstance(legacy.prompt, str) else "\n".join(legacy.prompt)
        params: dict[str, Any] = {k: getattr(legacy, k) for k in _PARAMS if getattr(legacy, k) is not None}
        ctx = RequestContext(agent.spec, [Message(role="user", content=prompt)], params=params, headers=headers_of(scope))
        turn = self.turn(scope, agent, ctx)
        await answer_json(turn, turn.complete(), text_completion, receive, send)


__all__ = ["CompletionsDoor", "text_completion"]

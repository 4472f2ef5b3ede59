"""Calls to an OpenAI-compatible upstream through the official SDK, without its models.

Requests go through ``AsyncOpenAI.post`` (the SDK's documented way to call any endpoint),
so auth, ``base_url``, timeouts, retries with backoff and status errors are the SDK's.
The body is encoded by msgspec straight from the contract's structs, and responses come
back raw (``cast_to=Response``) to be decoded by msgspec: building the SDK's pydantic
models (and transforming params through its TypedDicts) costs more than the HTTP call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from robutler_specs import LLMCall, LLMResult, Message, PromptTokensDetails, ProviderError, Usage

from .errors import PLUGIN

if TYPE_CHECKING:
    import openai

    from .transport import Response

_encode = msgspec.json.Encoder().encode


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None


class _Choice(msgspec.Struct):
    message: Message
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    """The parts of a chat completion we use; lenient about everything else."""

    choices: list[_Choice]
    model: str | None = None
    usage: _Usage | None = None


class _Embedding(msgspec.Struct):
    embedding: list[float] | str
    index: int = 0


class _Embeddings(msgspec.Struct):
    data: list[_Embedding]


_decode_completion = msgspec.json.Decoder(_Completion).decode
_decode_embeddings = msgspec.json.Decoder(_Embeddings).decode


def chat_body(call: LLMCall, default_params: dict[str, Any], *, stream: bool) -> bytes:
    """The JSON body of ``POST /chat/completions`` for ``call``.

    ``default_params`` go under the call's params; ``None`` values are dropped (they mean
    "not set" in the contract); ``model``, ``messages`` and ``stream`` are always ours. A
    stream asks for usage (``stream_options.include_usage``) so tokens are metered.
    """
    body: dict[str, Any] = {**default_params}
    for key, value in call.params.items():
        if value is not None:
            body[key] = value
    body["model"] = call.model_name
    body["messages"] = call.messages
    if call.tools:
        body["tools"] = call.tools
    if stream:
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return _encode(body)


async def post(client: openai.AsyncOpenAI, path: str, body: bytes, *, stream: bool = False,
               headers: Mapping[str, str] | None = None) -> Response:
    """POST ``body`` through the SDK, with a call's extra ``headers`` (``LLMCall.headers``);
    the response is raw (unread when ``stream``)."""
    options: Any = {"headers": dict(headers)} if headers else {}
    from .transport import Response  # here: the HTTP library comes with the SDK

    response: Response = await client.post(path, content=body, cast_to=Response, stream=stream, options=options)
    return response


def parse_completion(content: bytes, model: str) -> LLMResult:
    """Decode a non-streamed completion into an ``LLMResult``."""
    try:
        completion = _decode_completion(content)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProviderError(
            f"openai plugin: {model!r} answered with an unexpected body ({exc}): {content[:200]!r}",
            plugin=PLUGIN,
        ) from None
    if not completion.choices:
        raise ProviderError(f"openai plugin: {model!r} answered with no choices", plugin=PLUGIN)
    choice = completion.choices[0]
    usage = Usage()
    if completion.usage is not None:
        up = completion.usage
        usage = Usage(up.prompt_tokens, up.completion_tokens,
                      up.total_tokens or up.prompt_tokens + up.completion_tokens)
        if up.prompt_tokens_details is not None and up.prompt_tokens_details.cached_tokens:
            usage.prompt_tokens_details = up.prompt_tokens_details
    return LLMResult(
        message=choice.message,
        finish_reason=choice.finish_reason or ("tool_calls" if choice.message.tool_calls else "stop"),
        usage=usage,
        model=completion.model or model,
    )


def parse_embeddings(content: bytes, count: int) -> list[list[float]]:
    """Decode an embeddings response (float lists or base64 float32) in input order."""
    import array
    import base64

    try:
        rows = sorted(_decode_embeddings(content).data, key=lambda row: row.index)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProviderError(f"openai plugin: unexpected embeddings body ({exc})", plugin=PLUGIN) from None
    if len(rows) != count:
        raise ProviderError(f"openai plugin: asked for {count} embeddings, got {len(rows)}", plugin=PLUGIN)
    return [
        array.array("f", base64.b64decode(row.embedding)).tolist() if isinstance(row.embedding, str)
        else row.embedding
        for row in rows
    ]


__all__ = ["chat_body", "parse_completion", "parse_embeddings", "post"]

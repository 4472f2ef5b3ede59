"""OpenAI chat shapes to Anthropic's Messages API and back: the request body, the answer.

The mapping, field by field, is the table in ``docs/plugins/anthropic.md``. In short:

* every ``system`` (and ``developer``) message goes, in order, to the top-level ``system``;
* user and assistant text and ``image_url`` parts become content blocks; assistant
  ``tool_calls`` become ``tool_use`` blocks, ``role: "tool"`` results ``tool_result``
  blocks of a user turn;
* consecutive turns of one role are merged (tool results and the user message after them
  become one user turn, results first), so roles always alternate as Anthropic requires;
* parameters are translated where Anthropic has an equivalent and dropped where it has
  none (:data:`DROPPED`); any other key of ``default_params`` is sent as it is.

Bodies are built as plain dicts and encoded by msgspec; answers are decoded by msgspec
into small structs (the SDK's pydantic models cost more than the HTTP call).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET

from robutler_specs import (
    BadRequest,
    FunctionCall,
    LLMCall,
    LLMResult,
    Message,
    PromptTokensDetails,
    ProviderError,
    ToolCall,
    ToolDefinition,
    Usage,
)

from .config import AnthropicConfig
from .errors import PLUGIN

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode

#: Anthropic's ``stop_reason`` to OpenAI's ``finish_reason``.
STOP_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: OpenAI parameters the Messages API has no equivalent for: never sent.
DROPPED = frozenset({
    "presence_penalty", "frequency_penalty", "seed", "n", "logit_bias", "logprobs",
    "top_logprobs", "stream", "stream_options", "modalities", "audio", "prediction", "store",
    "reasoning_effort",
})

#: OpenAI parameters translated by :func:`request_body` (never sent under their own name).
TRANSLATED = frozenset({
    "max_tokens", "max_completion_tokens", "stop", "temperature", "top_p", "tool_choice",
    "parallel_tool_calls", "user", "response_format",
})

_TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str:
    """OpenAI's ``finish_reason`` for Anthropic's ``stop_reason``."""
    if stop_reason is None:
        return "tool_calls" if has_tool_calls else "stop"
    return STOP_REASONS.get(stop_reason, "stop")


def to_usage(input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int) -> Usage:
    """Anthropic's token counts as OpenAI counts them: cached and cache-written prompt
    tokens are part of ``prompt_tokens`` (and itemised in ``prompt_tokens_details``)."""
    prompt = input_tokens + cache_read + cache_creation
    details: PromptTokensDetails | Any = UNSET
    if cache_read or cache_creation:
        details = PromptTokensDetails(cached_tokens=cache_read, cache_creation_tokens=cache_creation)
    return Usage(prompt, output_tokens, prompt + output_tokens, prompt_tokens_details=details)


# -- request ---------------------------------------------------------------------------


def _bad(message: str, param: str) -> BadRequest:
    return BadRequest(f"anthropic plugin: {message}", param=param, plugin=PLUGIN)


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise _bad("an image_url part has no url", f"{where}.image_url.url")
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if encoding != "base64" or not data:
            raise _bad("image data URLs must be base64 (data:<media type>;base64,<data>)",
                       f"{where}.image_url.url")
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """Text and image blocks of an OpenAI ``content`` (a string or parts); empty text is
    left out (Anthropic refuses empty text blocks)."""
    if not content:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not text:
                continue
            block: dict[str, Any] = {"type": "text", "text": str(text)}
        elif kind == "image_url":
            block = _image_block(part, f"{where}[{j}]")
        elif kind == "refusal":
            continue
        else:
            raise _bad(f"content parts of type {kind!r} are not supported (text and image_url are)",
                       f"{where}[{j}].type")
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _tool_use_blocks(message: Message, index: int) -> list[dict[str, Any]]:
    blocks = []
    for j, call in enumerate(message.tool_calls or ()):
        arguments = call.function.arguments
        try:
            value = _decode_any(arguments) if arguments.strip() else {}
        except msgspec.DecodeError as exc:
            value = exc
        if not isinstance(value, dict):
            problem = value if isinstance(value, Exception) else f"a JSON {type(value).__name__}"
            raise _bad(f"the arguments of tool call {call.id!r} ({call.function.name}) must be a JSON "
                       f"object for Anthropic's tool_use input, got: {problem}",
                       f"messages[{index}].tool_calls[{j}].function.arguments")
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": value})
    return blocks


def _tool_result_block(message: Message, index: int) -> dict[str, Any]:
    if not message.tool_call_id:
        raise _bad("a tool message needs the tool_call_id of the call it answers",
                   f"messages[{index}].tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = message.content
    if isinstance(content, list):
        content = _content_blocks(content, f"messages[{index}].content")
    if content:
        block["content"] = content
    return block


def _is_result(block: dict[str, Any]) -> bool:
    return bool(block["type"] == "tool_result")


def convert_messages(messages: list[Message]) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """``(system, turns)``: the system prompt (a string, text blocks when there were
    several system messages, or ``None``) and the alternating user/assistant turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.role
        if role == "system" or role == "developer":
            text = message.text()
            if text:
                system.append(text)
            continue
        if role == "tool":
            blocks, role = [_tool_result_block(message, index)], "user"
        else:
            blocks = _content_blocks(message.content, f"messages[{index}].content")
            if role == "assistant" and message.tool_calls:
                blocks += _tool_use_blocks(message, index)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]  # the plain form: smaller, and what people write
        elif turn["role"] == "user" and any(map(_is_result, content)):
            # Anthropic wants a turn's tool results before anything else in it.
            turn["content"] = [b for b in content if _is_result(b)] + [b for b in content if not _is_result(b)]
    if not system:
        return None, turns
    if len(system) == 1:
        return system[0], turns
    return [{"type": "text", "text": text} for text in system], turns


def convert_tools(tools: list[ToolDefinition]) -> list[dict[str, Any]]:
    """OpenAI function tools as Anthropic tools (``parameters`` -> ``input_schema``)."""
    converted = []
    for tool in tools:
        fn = tool.function
        entry: dict[str, Any] = {"name": fn.name, "input_schema": fn.parameters or _EMPTY_SCHEMA}
        if fn.description:
            entry["description"] = fn.description
        converted.append(entry)
    return converted


def convert_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """OpenAI's ``tool_choice`` and ``parallel_tool_calls`` as Anthropic's ``tool_choice``."""
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise _bad(f"tool_choice {choice!r} is not one of auto, none, required", "tool_choice")
        result = {"type": _TOOL_CHOICES[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise _bad("tool_choice names no function", "tool_choice.function.name")
        result = {"type": "tool", "name": name}
    elif isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none"):
        result = dict(choice)  # already Anthropic's shape
    else:
        raise _bad(f"tool_choice {choice!r} is not understood", "tool_choice")
    if parallel is False:
        result = result or {"type": "auto"}
        if result["type"] != "none":
            result["disable_parallel_tool_use"] = True
    return result


def request_body(call: LLMCall, config: AnthropicConfig, *, stream: bool) -> bytes:
    """The JSON body of ``POST /v1/messages`` for ``call``.

    ``config.default_params`` go under the call's params; ``None`` values mean "not set".
    """
    params: dict[str, Any] = dict(config.default_params)
    for key, value in call.params.items():
        if value is not None:
            params[key] = value
    system, turns = convert_messages(call.messages)
    body: dict[str, Any] = {
        "model": call.model_name,
        "max_tokens": params.get("max_completion_tokens") or params.get("max_tokens") or config.max_tokens,
        "messages": turns,
    }
    if system is not None:
        body["system"] = system
    if stream:
        body["stream"] = True
    if call.tools:
        body["tools"] = convert_tools(call.tools)
        choice = convert_tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if config.sends_sampling:
        for key in ("temperature", "top_p"):
            if key in params:  # OpenAI's temperature goes to 2, Anthropic's to 1
                body[key] = min(float(params[key]), 1.0)
    user = params.get("user")
    if user:
        body["metadata"] = {**(params.get("metadata") or {}), "user_id": str(user)}
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            body["output_config"] = {**(params.get("output_config") or {}),
                                     "format": {"type": "json_schema", "schema": schema}}
    for key, value in params.items():
        if key not in TRANSLATED and key not in DROPPED and key not in body:
            body[key] = value
    return _encode(body)


# -- answer ----------------------------------------------------------------------------


class _Block(msgspec.Struct):
    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    input: msgspec.Raw = msgspec.Raw(b"{}")


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Message(msgspec.Struct):
    """The parts of a ``message`` we use; lenient about everything else."""

    content: list[_Block]
    model: str | None = None
    stop_reason: str | None = None
    usage: _Usage | None = None


_decode_message = msgspec.json.Decoder(_Message).decode


def parse_message(content: bytes, model: str) -> LLMResult:
    """Decode a non-streamed ``message`` into an ``LLMResult``: text blocks joined into
    ``content``, ``tool_use`` blocks as ``tool_calls`` (ids kept, input as JSON text);
    other blocks (thinking...) are left out."""
    try:
        message = _decode_message(content)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProviderError(
            f"anthropic plugin: {model!r} answered with an unexpected body ({exc}): {content[:200]!r}",
            plugin=PLUGIN,
        ) from None
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            arguments = bytes(block.input).decode()
            calls.append(ToolCall(id=block.id, function=FunctionCall(name=block.name, arguments=arguments)))
    text = "".join(texts)
    up = message.usage or _Usage()
    usage = to_usage(up.input_tokens, up.output_tokens, up.cache_read_input_tokens or 0,
                     up.cache_creation_input_tokens or 0)
    return LLMResult(
        message=Message(role="assistant", content=text if text or not calls else None,
                        tool_calls=calls or None),
        finish_reason=finish_reason(message.stop_reason, bool(calls)),
        usage=usage,
        model=message.model or model,
    )


__all__ = [
    "DROPPED",
    "STOP_REASONS",
    "TRANSLATED",
    "convert_messages",
    "convert_tool_choice",
    "convert_tools",
    "finish_reason",
    "parse_message",
    "request_body",
    "to_usage",
]

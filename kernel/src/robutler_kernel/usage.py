"""Token estimates for providers that report no usage.

The method (documented in docs/usage.md): about four characters per token, plus four tokens of
framing per message, rounded up. It is an estimate, so records built from it carry
``estimated=True``.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from robutler_specs import Message, Usage

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    """Estimated tokens of a text: ceil(len / 4)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def _message_text(message: Message) -> str:
    text = message.text()
    if message.tool_calls:
        text += "".join(c.function.name + c.function.arguments for c in message.tool_calls)
    return text


def estimate_usage(prompt: Iterable[Message], completion: Message) -> Usage:
    """Estimated usage of one LLM call, marked ``estimated``."""
    prompt_tokens = sum(
        estimate_tokens(_message_text(m)) + TOKENS_PER_MESSAGE for m in prompt
    )
    completion_tokens = estimate_tokens(_message_text(completion))
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        estimated=True,
    )


def to_text(value: object) -> str:
    """A tool's return value as the text the model sees: strings as they are, anything
    else as JSON (msgspec understands Structs, dataclasses and the builtins)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return msgspec.json.encode(value).decode()
    except TypeError:
        return str(value)

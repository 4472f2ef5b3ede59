"""The fixed rules of the scripted model when no script is configured.

1. If the conversation ends with tool results, it answers
   ``"Tool <name> returned: <content>"`` (one line per result).
2. Else, if the last user message says ``call <tool> ...`` or ``use <tool> ...`` and
   ``<tool>`` is one of the tools offered, it calls that tool. Arguments are a JSON object
   after the name (``call get_weather {"city": "Paris"}``) or ``key=value`` pairs
   (``call get_weather city=Paris days=3``; values are parsed as JSON when they can be, else
   kept as strings).
3. Else it echoes: ``"You said: <text>"`` (or a greeting when the message is empty).
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from robutler_specs import Message

_CALL = re.compile(r"\b(?:call|use)\s+(?:the\s+)?(?:tool\s+)?([A-Za-z0-9_-]+)(.*)$", re.I | re.S)

GREETING = (
    "Hello! I am the scripted demo model: I echo what you say, and I call a tool when you "
    "write 'call <tool> key=value'."
)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_arguments(text: str) -> dict[str, Any]:
    """Arguments written after a tool name: a JSON object, or ``key=value`` pairs."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return dict(
        (key, _value(val)) for key, sep, val in (w.partition("=") for w in words) if sep and key
    )


def tool_request(text: str, tool_names: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The tool the user asks for, with its arguments, if it is offered."""
    match = _CALL.search(text)
    if match and match.group(1) in tool_names:
        return match.group(1), parse_arguments(match.group(2))
    return None


def tool_results_reply(messages: list[Message]) -> str | None:
    """The answer to trailing tool results, or ``None`` if the last message is not one."""
    results: list[Message] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    if not results:
        return None
    names: dict[str, str] = {}
    for message in messages:
        for call in message.tool_calls or ():
            names[call.id] = call.function.name
    lines = [
        f"Tool {names.get(r.tool_call_id or '', 'unknown')} returned: {r.text()}"
        for r in reversed(results)
    ]
    return "\n".join(lines)


def echo(messages: list[Message]) -> str:
    """``"You said: <last user text>"``, or the greeting."""
    for message in reversed(messages):
        if message.role == "user":
            text = message.text().strip()
            return f"You said: {text}" if text else GREETING
    return GREETING

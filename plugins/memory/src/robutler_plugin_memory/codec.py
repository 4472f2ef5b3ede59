"""How one stored message is encoded: ``<tokens>:<kind>:<JSON message>``.

The small text header lets the Redis window script (Lua) count tokens and find group starts
without decoding JSON; ``kind`` is ``t`` for a tool result and ``m`` for any other message.
"""

from __future__ import annotations

import msgspec

from robutler_specs import Message

from .window import estimate_tokens

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)


def encode(message: Message) -> bytes:
    """``message`` as a stored item."""
    kind = b"t" if message.role == "tool" else b"m"
    return b"%d:%s:%s" % (estimate_tokens(message), kind, _encoder.encode(message))


def decode(item: bytes) -> Message:
    """A stored item back as a message.

    :raises ValueError: the item is not one this plugin wrote.
    """
    parts = item.split(b":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in (b"t", b"m"):
        raise ValueError(f"not a stored message: {item[:60]!r}")
    try:
        return _decoder.decode(parts[2])
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a stored message: {exc}") from None


def decode_all(items: list[bytes]) -> tuple[list[Message], int]:
    """The stored items of a conversation as messages (:func:`decode` on each), and how many
    were skipped (not items this plugin wrote, or not messages).

    Each item is decoded on its own: items joined into one array and decoded at once cost
    about as much, and two foreign items could then make one message of their halves.
    """
    messages: list[Message] = []
    for item in items:
        try:
            messages.append(decode(item))
        except ValueError:
            pass
    return messages, len(items) - len(messages)


__all__ = ["decode", "decode_all", "encode"]

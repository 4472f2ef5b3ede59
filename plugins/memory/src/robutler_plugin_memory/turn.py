"""One request's part of a conversation: what was loaded, and what the request added.

The kernel does not hand a skill the messages it produced, so the skill records them as they
happen (``after_llm_call``: each round's assistant message; ``after_toolcall`` /
``after_handoff``: each tool result; ``on_message``: the final answer) and
:meth:`Turn.new_messages` puts them back in conversation order at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from robutler_specs import Message

from .window import SYSTEM_ROLES


def own_messages(messages: Sequence[Message]) -> list[Message]:
    """The request's conversation messages: everything but system/developer instructions."""
    return [m for m in messages if m.role not in SYSTEM_ROLES]


def sends_history(messages: Sequence[Message]) -> bool:
    """Whether the client sent a conversation of its own (any assistant message): then its
    history is the truth, nothing is prepended, and the stored conversation is replaced."""
    return any(m.role == "assistant" for m in messages)


@dataclass(slots=True)
class Turn:
    """What ``short_term_memory`` keeps in ``ctx.state["short_term_memory"]``.

    :ivar key: the full storage key, or ``None`` when the request has no conversation.
    :ivar history: the stored messages prepended to every LLM call (safe for a model).
    :ivar client_history: the client sent its own history (see :func:`sends_history`).
    :ivar pending: ids of stored tool calls still waiting for the client's results.
    :ivar rounds: each LLM round's assistant message, by round.
    :ivar results: tool results by call id, as the model saw them.
    :ivar final: the final assistant message (after ``on_message`` rewrites).
    """

    key: str | None
    history: list[Message] = field(default_factory=list)
    client_history: bool = False
    pending: set[str] = field(default_factory=set)
    rounds: dict[int, Message] = field(default_factory=dict)
    results: dict[str, Message] = field(default_factory=dict)
    final: Message | None = None

    def incoming(self, messages: Sequence[Message]) -> list[Message]:
        """The request's messages worth storing: its own messages, minus tool results at the
        start that answer no call we know of (they would be orphans in the store)."""
        own = own_messages(messages)
        if self.client_history:
            return own
        start = 0
        while start < len(own) and own[start].role == "tool" and own[start].tool_call_id not in self.pending:
            start += 1
        return own[start:]

    def produced(self, client_tools: set[str]) -> list[Message]:
        """The messages this request added, in conversation order, every call with its
        result: a call that got none (an unknown tool, or the ``max_tool_rounds`` stop) is
        left out, except the client's own tool calls of the last round, which the client
        answers in its next request.

        :param client_tools: names of the tools the client sent (their calls stay pending).
        """
        out: list[Message] = []
        ordered = [self.rounds[r] for r in sorted(self.rounds)]
        for index, message in enumerate(ordered):
            last = index == len(ordered) - 1
            if not message.tool_calls:
                # The answer round: store the final message as hooks left it.
                out.append(self.final if last and self.final is not None else message)
                continue
            kept = [
                c for c in message.tool_calls
                if c.id in self.results or (last and c.function.name in client_tools)
            ]
            if kept or message.content:
                out.append(
                    message if len(kept) == len(message.tool_calls)
                    else Message(role="assistant", content=message.content, name=message.name, tool_calls=kept or None)
                )
            out.extend(self.results[c.id] for c in kept if c.id in self.results)
        final = self.final
        if final is not None and (not ordered or ordered[-1].tool_calls) and not final.tool_calls:
            # The answer did not come from a model round: a handoff's result, or the note
            # the kernel writes when max_tool_rounds stops the loop.
            out.append(final)
        return out


__all__ = ["Turn", "own_messages", "sends_history"]

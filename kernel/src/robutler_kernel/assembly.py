"""Assemble a provider's streamed chunks into one assistant message."""

from __future__ import annotations

from robutler_specs import (
    ChatCompletionChunk,
    FunctionCall,
    LLMResult,
    Message,
    ToolCall,
    Usage,
)


class StreamAssembler:
    """Accumulates chunks: text, tool calls by ``index``, finish reason, usage."""

    __slots__ = ("_calls", "_text", "finish_reason", "model", "usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk in."""
        if chunk.usage:
            self.usage = chunk.usage  # type: ignore[assignment]
        if self.model is None:
            self.model = chunk.model or None
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                self._text.append(delta.content)
            if delta.tool_calls:
                for part in delta.tool_calls:
                    slot = self._calls.setdefault(part.index, ["", ""])
                    if part.id:
                        slot[0] = part.id
                    if part.function is not None:
                        if part.function.name:
                            slot[1] += part.function.name
                        if part.function.arguments:
                            slot.append(part.function.arguments)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason

    @property
    def has_output(self) -> bool:
        """Whether any text or tool call arrived."""
        return bool(self._text or self._calls)

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._text)

    def result(self) -> LLMResult:
        """The assembled message. Tool calls are ordered by index; a call the provider
        sent without an id gets a generated one. The finish reason defaults for a stream
        that reported none, which the caller (:mod:`.llm`) treats as cut short and meters
        as such: this result is then what was delivered, not an answer."""
        tool_calls = [
            ToolCall(
                id=slot[0] or f"call_{index}",
                function=FunctionCall(name=slot[1], arguments="".join(slot[2:])),
            )
            for index, slot in sorted(self._calls.items())
        ]
        message = Message(
            role="assistant",
            content=self.text if self._text or not tool_calls else None,
            tool_calls=tool_calls or None,
        )
        finish = self.finish_reason or ("tool_calls" if tool_calls else "stop")
        return LLMResult(
            message=message, finish_reason=finish, usage=self.usage or Usage(), model=self.model
        )

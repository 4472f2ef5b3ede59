"""OpenAI-compatible wire types, as msgspec Structs.

Requests are decoded straight into these types, so a wrong type is reported with
the exact path of the field (``Expected `str`, got `int` - at `$.messages[0].content```).
Unknown fields are ignored, as OpenAI-compatible servers usually do. New fields are
only ever added with defaults (the contract evolves additively).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

Role = Literal["system", "developer", "user", "assistant", "tool"]


class FunctionCall(msgspec.Struct):
    """The function an assistant tool call invokes; ``arguments`` is a JSON string."""

    name: str
    arguments: str = ""


class ToolCall(msgspec.Struct):
    """One tool call of an assistant message."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class Message(msgspec.Struct, omit_defaults=True):
    """A chat message. ``content`` is a string or a list of content parts (kept as dicts)."""

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text: the string content, or its text parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(
            str(part.get("text", "")) for part in self.content if part.get("type") == "text"
        )


class FunctionDefinition(msgspec.Struct, omit_defaults=True):
    """A function the model may call, with a JSON schema for its parameters."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(msgspec.Struct):
    """A tool offered to the model (only ``function`` tools exist today)."""

    function: FunctionDefinition
    type: Literal["function"] = "function"


class StreamOptions(msgspec.Struct, omit_defaults=True):
    """``stream_options``: ``include_usage`` adds a final chunk with usage and no choices."""

    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, omit_defaults=True):
    """The body of ``POST /chat/completions``.

    ``model`` is optional on ``/{agent}/chat/completions`` (the agent decides) and names the
    agent on ``/v1/chat/completions``.
    """

    messages: list[Message]
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None


#: Request fields forwarded to the provider as LLM parameters when set.
FORWARDED_PARAMS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "seed",
    "user",
    "presence_penalty",
    "frequency_penalty",
)


class PromptTokensDetails(msgspec.Struct, omit_defaults=True):
    """Prompt tokens served from (or written to) the provider's prompt cache.

    ``cached_tokens`` is OpenAI's field (read from the cache); ``cache_creation_tokens``
    (written to the cache; Anthropic bills them apart) is a Robutler extension. Both are
    already counted in ``prompt_tokens``.
    """

    cached_tokens: int = 0
    cache_creation_tokens: int = 0


class Usage(msgspec.Struct):
    """Token usage; summed over every LLM call of a request.

    ``cost`` (credits charged) and ``estimated`` are Robutler extensions, absent from the
    JSON unless set; ``prompt_tokens_details`` is present when a provider used its prompt
    cache.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | UnsetType = UNSET
    estimated: bool | UnsetType = UNSET
    prompt_tokens_details: PromptTokensDetails | UnsetType | None = UNSET

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens read from the provider's cache (0 when none were)."""
        details = self.prompt_tokens_details
        return details.cached_tokens if isinstance(details, PromptTokensDetails) else 0

    @property
    def cache_creation_tokens(self) -> int:
        """Prompt tokens written to the provider's cache (0 when none were)."""
        details = self.prompt_tokens_details
        return details.cache_creation_tokens if isinstance(details, PromptTokensDetails) else 0

    def add(self, other: Usage) -> None:
        """Add ``other`` into this usage, in place."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        if other.estimated:
            self.estimated = True


class Choice(msgspec.Struct):
    """One choice of a non-streamed completion."""

    index: int
    message: Message
    finish_reason: str | None
    logprobs: None = None


class ChatCompletion(msgspec.Struct):
    """A non-streamed chat completion."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    object: Literal["chat.completion"] = "chat.completion"
    #: The agent that answered, when a handoff passed the request on (absent otherwise).
    agent: str | UnsetType = UNSET


class FunctionCallDelta(msgspec.Struct, omit_defaults=True):
    """A piece of a streamed function call: ``name`` first, then ``arguments`` fragments."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, omit_defaults=True):
    """A piece of a streamed tool call; ``index`` says which call it continues."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class Delta(msgspec.Struct, omit_defaults=True):
    """The change a streamed chunk carries."""

    role: Role | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct):
    """One choice of a streamed chunk; ``finish_reason`` is set on the last one."""

    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct):
    """One server-sent event of a streamed chat completion."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    #: Absent from the JSON unless set (OpenAI sends it on the last chunk only).
    usage: Usage | UnsetType | None = UNSET
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    #: On the last chunks: the agent that answered, when a handoff passed the request on.
    agent: str | UnsetType = UNSET


class ModelCard(msgspec.Struct):
    """An entry of ``GET /v1/models``: one agent."""

    id: str
    created: int
    owned_by: str = "robutler"
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct):
    """``GET /v1/models``."""

    data: list[ModelCard]
    object: Literal["list"] = "list"


class ErrorDetail(msgspec.Struct):
    """The inside of an OpenAI-shaped error body."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    """``{"error": {...}}``: every error the server returns has this shape."""

    error: ErrorDetail


class CompletionRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/completions`` (legacy text completion, V1 compatibility)."""

    prompt: str | list[str]
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None


__all__ = [
    "FORWARDED_PARAMS",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChunkChoice",
    "CompletionRequest",
    "Delta",
    "ErrorBody",
    "ErrorDetail",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "Message",
    "ModelCard",
    "ModelList",
    "PromptTokensDetails",
    "Role",
    "StreamOptions",
    "ToolCall",
    "ToolCallDelta",
    "ToolDefinition",
    "Usage",
]

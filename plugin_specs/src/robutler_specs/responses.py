"""OpenAI Responses API wire types (``POST /v1/responses``), as msgspec Structs.

Requests are decoded straight into these types, so a wrong type names the field
(``Expected `str`, got `int` - at `$.input[0].content```). Input items and tools are flat
Structs (every field optional but ``type``) because OpenAI lets a message item leave out
its ``type``; the kernel checks what each ``type`` needs and names the field at fault.
What the server sends (the :class:`Response`, its output items, stream events) uses tagged
Structs whose ``type`` field is fixed. Unknown request fields are ignored; fields are only
ever added with defaults.

The mapping to and from chat completions is the kernel's ``robutler_kernel.responses_map``;
``docs/responses.md`` documents it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

InputRole = Literal["user", "assistant", "system", "developer"]


class InputContent(msgspec.Struct, omit_defaults=True):
    """A content part of an input message: ``input_text``, ``input_image``, ``input_file``,
    or, in an assistant message sent back as history, ``output_text`` / ``refusal``."""

    type: str
    text: str | None = None
    image_url: str | None = None
    detail: str | None = None
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None
    refusal: str | None = None
    annotations: list[Any] | None = None


class InputItem(msgspec.Struct, omit_defaults=True):
    """One item of ``input``: a ``message`` (``role`` and ``content``; ``type`` may be left
    out), a ``function_call`` the model made (``call_id``, ``name``, ``arguments``), or a
    ``function_call_output`` (``call_id``, ``output``) answering one."""

    type: str = "message"
    role: InputRole | None = None
    content: str | list[InputContent] | None = None
    id: str | None = None
    status: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[InputContent] | None = None


class ResponsesTool(msgspec.Struct, omit_defaults=True):
    """A tool of the request. Only ``function`` tools are served: the model's calls to them
    are returned to the client as ``function_call`` items."""

    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(msgspec.Struct, omit_defaults=True):
    """``text.format``: ``text`` (default), ``json_object``, or ``json_schema`` with
    ``name``, ``schema``, ``description`` and ``strict``."""

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, omit_defaults=True):
    """``text``: the output's format (structured output) and verbosity."""

    format: TextFormat = msgspec.field(default_factory=lambda: TextFormat(type="text"))
    verbosity: str | None = None


class ResponsesRequest(msgspec.Struct, omit_defaults=True):
    """The body of ``POST /v1/responses`` (``model`` names the agent there) and of
    ``POST /{agent}/responses`` (where ``model`` may pick one of the agent's models).

    ``store`` defaults to true as OpenAI's does: the response is kept (``server.responses_ttl``)
    for ``GET /v1/responses/{id}`` and for ``previous_response_id``.
    """

    input: str | list[InputItem] | None = None
    model: str | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[ResponsesTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    stream: bool = False
    store: bool = True
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None


class OutputText(msgspec.Struct, tag="output_text", tag_field="type"):
    """The text of an output message."""

    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class OutputMessage(msgspec.Struct, tag="message", tag_field="type"):
    """An assistant message of the output."""

    id: str
    content: list[OutputText]
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


class FunctionCallItem(msgspec.Struct, tag="function_call", tag_field="type"):
    """A call of one of the client's function tools: the client runs it and sends a
    ``function_call_output`` with the same ``call_id``."""

    id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


OutputItem = OutputMessage | FunctionCallItem


class InputTokensDetails(msgspec.Struct):
    """Input tokens read from (``cached_tokens``) and written to (``cache_write_tokens``)
    the provider's prompt cache; both are counted in ``input_tokens``."""

    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct):
    """Output tokens spent on reasoning (counted in ``output_tokens``)."""

    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct):
    """Token usage, summed over every LLM call of the request. ``cost`` (credits) and
    ``estimated`` are Robutler extensions, absent unless set."""

    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)
    total_tokens: int = 0
    cost: float | UnsetType = UNSET
    estimated: bool | UnsetType = UNSET


class ResponseError(msgspec.Struct):
    """Why a response failed (``status: "failed"``)."""

    code: str
    message: str


class IncompleteDetails(msgspec.Struct):
    """Why a response is incomplete: ``max_output_tokens`` or ``content_filter``."""

    reason: str


ResponseStatus = Literal["completed", "failed", "in_progress", "incomplete"]


class Response(msgspec.Struct, kw_only=True):
    """A response object: the answer of ``POST /v1/responses`` and of ``GET
    /v1/responses/{id}``. ``model`` is the agent's name; ``agent`` (a Robutler extension)
    names the agent that answered when a handoff passed the request on."""

    id: str
    created_at: int
    model: str
    output: list[OutputItem] = []
    status: ResponseStatus = "completed"
    object: Literal["response"] = "response"
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = {}
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    store: bool = True
    temperature: float | None = None
    text: TextConfig = msgspec.field(default_factory=TextConfig)
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[ResponsesTool] = []
    top_p: float | None = None
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    completed_at: int | None = None
    agent: str | UnsetType = UNSET


class DeletedResponse(msgspec.Struct):
    """The answer of ``DELETE /v1/responses/{id}``."""

    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool = True


class StoredResponse(msgspec.Struct):
    """What the server keeps of a stored response (``responses:<id>`` in the kernel's
    state store): the response, the conversation items before its output (earlier turns
    and this request's input; not ``instructions``, which OpenAI does not carry over), and
    the caller's ``user_id`` (only the same identity may read, delete or continue it)."""

    response: Response
    conversation: list[InputItem] = []
    owner: str | None = None


# -- stream events ----------------------------------------------------------------------


class StreamEvent(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of the server-sent events of a streamed response; ``sequence_number`` counts
    the events of the stream from 0."""

    sequence_number: int


class ResponseCreated(StreamEvent, tag="response.created"):
    """The response exists (``status: "in_progress"``, no output yet)."""

    response: Response


class ResponseInProgress(StreamEvent, tag="response.in_progress"):
    """The response is being generated."""

    response: Response


class ResponseCompleted(StreamEvent, tag="response.completed"):
    """The whole response, with its output and usage: the last event of a success."""

    response: Response


class ResponseIncomplete(StreamEvent, tag="response.incomplete"):
    """The whole response, cut short (``incomplete_details`` says why)."""

    response: Response


class ResponseFailed(StreamEvent, tag="response.failed"):
    """The response failed (``error`` says why): the last event of a failure."""

    response: Response


class OutputItemAdded(StreamEvent, tag="response.output_item.added"):
    """An output item begins (``status: "in_progress"``)."""

    output_index: int
    item: OutputItem


class OutputItemDone(StreamEvent, tag="response.output_item.done"):
    """An output item is complete."""

    output_index: int
    item: OutputItem


class ContentPartAdded(StreamEvent, tag="response.content_part.added"):
    """A content part of an output message begins (empty text)."""

    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class ContentPartDone(StreamEvent, tag="response.content_part.done"):
    """A content part of an output message is complete."""

    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class OutputTextDelta(StreamEvent, tag="response.output_text.delta"):
    """More text of a content part."""

    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = []


class OutputTextDone(StreamEvent, tag="response.output_text.done"):
    """The whole text of a content part."""

    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = []


class FunctionCallArgumentsDelta(StreamEvent, tag="response.function_call_arguments.delta"):
    """More of a function call's arguments (a JSON string, in pieces)."""

    item_id: str
    output_index: int
    delta: str


class FunctionCallArgumentsDone(StreamEvent, tag="response.function_call_arguments.done"):
    """A function call's whole arguments."""

    item_id: str
    output_index: int
    name: str
    arguments: str


class ErrorEvent(StreamEvent, tag="error"):
    """An error during the stream (then ``response.failed``)."""

    code: str | None
    message: str
    param: str | None = None


__all__ = [
    "ContentPartAdded",
    "ContentPartDone",
    "DeletedResponse",
    "ErrorEvent",
    "FunctionCallArgumentsDelta",
    "FunctionCallArgumentsDone",
    "FunctionCallItem",
    "IncompleteDetails",
    "InputContent",
    "InputItem",
    "InputRole",
    "InputTokensDetails",
    "OutputItem",
    "OutputItemAdded",
    "OutputItemDone",
    "OutputMessage",
    "OutputText",
    "OutputTextDelta",
    "OutputTextDone",
    "OutputTokensDetails",
    "Response",
    "ResponseCompleted",
    "ResponseCreated",
    "ResponseError",
    "ResponseFailed",
    "ResponseInProgress",
    "ResponseIncomplete",
    "ResponseStatus",
    "ResponseUsage",
    "ResponsesRequest",
    "ResponsesTool",
    "StoredResponse",
    "StreamEvent",
    "TextConfig",
    "TextFormat",
]

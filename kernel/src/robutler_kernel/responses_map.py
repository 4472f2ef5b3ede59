"""The OpenAI Responses API in terms of chat completions: pure functions, no I/O.

The ``/v1/responses`` door (``server/responses_door.py``) runs an agent's :class:`Turn`
like every other door; this module translates what goes in (input items, instructions,
function tools, ``text.format``, parameters -> chat :class:`Message` s,
:class:`ToolDefinition` s and LLM parameters) and what comes out (a
:class:`ChatCompletion` -> a :class:`Response`; a stream of chunks -> the Responses
events in their documented order, :class:`ResponseEvents`). ``docs/responses.md`` is the
reference of the mapping and its decisions.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

import msgspec

from robutler_specs import (
    BadRequest,
    ChatCompletion,
    ChatCompletionChunk,
    FunctionCall,
    Message,
    RequestError,
    ToolCall,
    ToolDefinition,
    Usage,
)
from robutler_specs.responses import (
    ContentPartAdded,
    ContentPartDone,
    ErrorEvent,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    FunctionCallItem,
    IncompleteDetails,
    InputContent,
    InputItem,
    InputTokensDetails,
    OutputItem,
    OutputItemAdded,
    OutputItemDone,
    OutputMessage,
    OutputText,
    OutputTextDelta,
    OutputTextDone,
    OutputTokensDetails,
    Response,
    ResponseCompleted,
    ResponseCreated,
    ResponseError,
    ResponseFailed,
    ResponseIncomplete,
    ResponseInProgress,
    ResponsesRequest,
    ResponsesTool,
    ResponseUsage,
    StreamEvent,
    TextConfig,
)
from robutler_specs.wire import FunctionDefinition

#: Item types the client may send that carry nothing a chat model reads (we never emit
#: them; another server's reasoning is opaque here): dropped.
IGNORED_ITEMS = frozenset({"reasoning"})


def new_id(prefix: str) -> str:
    """A fresh id in OpenAI's style: ``resp_...``, ``msg_...``, ``fc_...``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def item_ids(response_id: str) -> Callable[[str], str]:
    """The item ids of one response: ``msg_<hex>_0``, ``fc_<hex>_1``... for ``resp_<hex>``.

    An ``item_reference`` names an item by its id alone (the Vercel AI SDK sends the model's
    earlier text that way), so the id leads back to the stored response holding the item:
    :func:`response_id_of`."""
    stem = response_id.removeprefix("resp_")
    counter = itertools.count()
    return lambda prefix: f"{prefix}_{stem}_{next(counter)}"


def response_id_of(item_id: str) -> str | None:
    """The response an item id of :func:`item_ids` belongs to (``None``: not such an id)."""
    _, _, rest = item_id.partition("_")
    stem, _, number = rest.rpartition("_")
    return f"resp_{stem}" if stem and number.isdigit() else None


# -- what goes in ------------------------------------------------------------------------


def input_items(value: str | list[InputItem] | None) -> list[InputItem]:
    """``input`` as items: a string is one user message."""
    if value is None:
        return []
    if isinstance(value, str):
        return [InputItem(role="user", content=value)]
    return list(value)


def _part(part: InputContent, where: str) -> dict[str, Any]:
    """One input content part as a chat content part."""
    kind = part.type
    if kind in ("input_text", "output_text", "text"):
        if part.text is None:
            raise BadRequest(f"{where}.text is required for a {kind} part", param=f"{where}.text")
        return {"type": "text", "text": part.text}
    if kind == "refusal":
        return {"type": "text", "text": part.refusal or ""}
    if kind == "input_image":
        if not part.image_url:
            raise BadRequest(
                f"{where}.image_url is required (a URL or a data: URL; file_id is not supported)",
                param=f"{where}.image_url",
            )
        image: dict[str, Any] = {"url": part.image_url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {k: v for k, v in (("file_data", part.file_data), ("file_id", part.file_id),
                                  ("filename", part.filename)) if v is not None}
        if not file:
            raise BadRequest(f"{where} needs file_data or file_id", param=f"{where}.file_data")
        return {"type": "file", "file": file}
    raise BadRequest(
        f"unsupported content part type {kind!r} at {where}; use input_text, input_image or input_file",
        param=f"{where}.type",
    )


def _content(value: str | list[InputContent] | None, where: str, *, role: str) -> str | list[dict[str, Any]] | None:
    if value is None or isinstance(value, str):
        return value
    parts = [_part(p, f"{where}[{i}]") for i, p in enumerate(value)]
    if role != "user" and all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)  # chat takes plain text for these roles
    return parts


def _output_text(value: str | list[InputContent] | None, where: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return "".join(p["text"] for p in (_part(c, f"{where}[{i}]") for i, c in enumerate(value)) if p["type"] == "text")


def messages_of(items: Iterable[InputItem], *, field: str = "input", known_calls: Iterable[str] = ()) -> list[Message]:
    """Input items as chat messages.

    A ``function_call`` joins the assistant message just before it (the model's text and
    its calls are one chat message), or starts one; a ``function_call_output`` is a
    ``tool`` message, and must answer a call made before it (in these items or in
    ``known_calls``, the calls of the conversation so far).

    :raises BadRequest: an item the mapping cannot serve, naming it (``input[2].call_id``).
    """
    messages: list[Message] = []
    calls = set(known_calls)
    joinable = False  # whether the last message is an assistant message calls may join
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        kind = item.type
        if kind == "message":
            if item.role is None:
                raise BadRequest(f"{where}.role is required for a message", param=f"{where}.role")
            if item.content is None:
                raise BadRequest(f"{where}.content is required for a message", param=f"{where}.content")
            messages.append(Message(role=item.role, content=_content(item.content, f"{where}.content", role=item.role)))
            joinable = item.role == "assistant"
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if getattr(item, name) is None:
                    raise BadRequest(f"{where}.{name} is required for a function_call", param=f"{where}.{name}")
            assert item.call_id is not None and item.name is not None and item.arguments is not None
            call = ToolCall(id=item.call_id, function=FunctionCall(name=item.name, arguments=item.arguments))
            if joinable:
                last = messages[-1]
                last.tool_calls = [*(last.tool_calls or ()), call]
            else:
                messages.append(Message(role="assistant", tool_calls=[call]))
                joinable = True
            calls.add(item.call_id)
        elif kind == "function_call_output":
            if item.call_id is None:
                raise BadRequest(f"{where}.call_id is required for a function_call_output", param=f"{where}.call_id")
            if item.output is None:
                raise BadRequest(f"{where}.output is required for a function_call_output", param=f"{where}.output")
            if item.call_id not in calls:
                raise BadRequest(
                    f"no function_call with call_id {item.call_id!r} comes before {where}; send the call "
                    "(or previous_response_id) with its output",
                    param=f"{where}.call_id",
                )
            messages.append(Message(role="tool", tool_call_id=item.call_id, content=_output_text(item.output, f"{where}.output")))
            joinable = False
        elif kind in IGNORED_ITEMS:
            continue
        else:
            raise BadRequest(
                f"unsupported input item type {kind!r} at {where}; use message, function_call, "
                "function_call_output or item_reference",
                param=f"{where}.type",
            )
    return messages


def calls_in(items: Iterable[InputItem]) -> set[str]:
    """The ``call_id`` of every ``function_call`` among ``items``."""
    return {item.call_id for item in items if item.type == "function_call" and item.call_id is not None}


def _content_items(content: str | list[dict[str, Any]] | None) -> str | list[InputContent] | None:
    if content is None or isinstance(content, str):
        return content
    parts: list[InputContent] = []
    for part in content:
        if part.get("type") == "text":
            parts.append(InputContent(type="input_text", text=str(part.get("text", ""))))
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            parts.append(InputContent(type="input_image", image_url=image.get("url"), detail=image.get("detail")))
        elif part.get("type") == "file":
            file = part.get("file") or {}
            parts.append(InputContent(type="input_file", file_data=file.get("file_data"),
                                      file_id=file.get("file_id"), filename=file.get("filename")))
    return parts


def items_of(messages: Iterable[Message]) -> list[InputItem]:
    """Chat messages as input items: the inverse of :func:`messages_of` (an assistant
    message with text and tool calls is a message item followed by function_call items)."""
    items: list[InputItem] = []
    for message in messages:
        if message.role == "tool":
            items.append(InputItem(type="function_call_output", call_id=message.tool_call_id, output=message.text()))
            continue
        if message.content is not None or not message.tool_calls:
            items.append(InputItem(role=message.role, content=_content_items(message.content)))
        for call in message.tool_calls or ():
            items.append(InputItem(type="function_call", call_id=call.id, name=call.function.name,
                                   arguments=call.function.arguments))
    return items


def conversation_items(output: Iterable[OutputItem]) -> list[InputItem]:
    """A response's output as the input items of the next turn (``previous_response_id``)."""
    items: list[InputItem] = []
    for item in output:
        if isinstance(item, OutputMessage):
            items.append(InputItem(role="assistant", id=item.id,
                                   content=[InputContent(type="output_text", text=p.text) for p in item.content]))
        else:
            items.append(InputItem(type="function_call", id=item.id, call_id=item.call_id, name=item.name,
                                   arguments=item.arguments))
    return items


def tool_definitions(tools: Iterable[ResponsesTool] | None) -> list[ToolDefinition]:
    """The request's function tools as chat tool definitions.

    :raises BadRequest: a tool that is not a function (hosted tools such as ``web_search``
        do not exist here), or one without a name.
    """
    definitions = []
    for i, tool in enumerate(tools or ()):
        if tool.type != "function":
            raise BadRequest(
                f"tools[{i}].type {tool.type!r} is not supported: only function tools are served here",
                param=f"tools[{i}].type",
            )
        if not tool.name:
            raise BadRequest(f"tools[{i}].name is required", param=f"tools[{i}].name")
        definitions.append(ToolDefinition(FunctionDefinition(
            name=tool.name, description=tool.description, parameters=tool.parameters, strict=tool.strict,
        )))
    return definitions


def responses_tools(definitions: Iterable[ToolDefinition]) -> list[ResponsesTool]:
    """Chat tool definitions as Responses function tools (the inverse of :func:`tool_definitions`)."""
    return [
        ResponsesTool(type="function", name=d.function.name, description=d.function.description,
                      parameters=d.function.parameters, strict=d.function.strict)
        for d in definitions
    ]


def tool_choice_of(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """``tool_choice`` in chat's shape: ``auto``/``none``/``required`` as they are;
    ``{"type": "function", "name": n}`` -> ``{"type": "function", "function": {"name": n}}``."""
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise BadRequest(f"tool_choice {choice!r} must be auto, none or required", param="tool_choice")
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest("tool_choice must be auto, none, required or {\"type\": \"function\", \"name\": ...}",
                     param="tool_choice")


def response_format_of(text: TextConfig | None) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format`` (``None`` for plain text)."""
    if text is None or text.format.type == "text":
        return None
    fmt = text.format
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if not fmt.name:
        raise BadRequest("text.format.name is required for json_schema", param="text.format.name")
    if fmt.schema is None:
        raise BadRequest("text.format.schema is required for json_schema", param="text.format.schema")
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
    if fmt.description is not None:
        schema["description"] = fmt.description
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": schema}


def params_of(request: ResponsesRequest) -> dict[str, Any]:
    """The LLM parameters a Responses request sets, in chat's names."""
    params: dict[str, Any] = {}
    for name, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        # max_output_tokens counts reasoning tokens too: chat's max_completion_tokens.
        ("max_completion_tokens", request.max_output_tokens),
        ("parallel_tool_calls", request.parallel_tool_calls),
        ("tool_choice", tool_choice_of(request.tool_choice)),
        ("response_format", response_format_of(request.text)),
        ("user", request.user),
    ):
        if value is not None:
            params[name] = value
    return params


# -- what comes out ----------------------------------------------------------------------


def usage_of(usage: Usage) -> ResponseUsage:
    """Chat usage in the Responses names (``prompt_tokens`` -> ``input_tokens``...)."""
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(usage.cached_tokens, usage.cache_creation_tokens),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(),
        total_tokens=usage.total_tokens,
        cost=usage.cost,
        estimated=usage.estimated,
    )


#: finish reasons that make a response ``incomplete``, and the reason given.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def output_of(message: Message, finish_reason: str | None, ids: Callable[[str], str] = new_id) -> list[OutputItem]:
    """The final assistant message as output items: its text as a message item (when it
    has text, or no calls), then one ``function_call`` item per call."""
    status: Literal["completed", "incomplete"] = "incomplete" if finish_reason in INCOMPLETE else "completed"
    items: list[OutputItem] = []
    text = message.text()
    if text or not message.tool_calls:
        items.append(OutputMessage(id=ids("msg"), content=[OutputText(text)], status=status))
    for call in message.tool_calls or ():
        items.append(FunctionCallItem(id=ids("fc"), call_id=call.id, name=call.function.name,
                                      arguments=call.function.arguments))
    return items


def finished(base: Response, output: list[OutputItem], finish_reason: str | None, usage: Usage,
             agent: str | msgspec.UnsetType, completed_at: int) -> Response:
    """``base`` (the response as created) with its output, status and usage."""
    reason = INCOMPLETE.get(finish_reason or "")
    return msgspec.structs.replace(
        base,
        output=output,
        status="incomplete" if reason else "completed",
        incomplete_details=IncompleteDetails(reason) if reason else None,
        usage=usage_of(usage),
        agent=agent,
        completed_at=completed_at,
    )


def response_of(base: Response, completion: ChatCompletion, completed_at: int,
                ids: Callable[[str], str] = new_id) -> Response:
    """A chat completion as the Responses answer built on ``base``."""
    choice = completion.choices[0]
    return finished(base, output_of(choice.message, choice.finish_reason, ids), choice.finish_reason,
                    completion.usage, completion.agent, completed_at)


class _Call:
    __slots__ = ("arguments", "index", "item", "name")

    def __init__(self, item: FunctionCallItem, index: int) -> None:
        self.item = item
        self.index = index  # in the output
        self.name = item.name
        self.arguments: list[str] = []


class ResponseEvents:
    """Chat completion chunks in, Responses stream events out (one instance per stream).

    :meth:`feed` takes each chunk of a turn's stream and returns the events it makes:
    ``response.created`` and ``response.in_progress`` on the first; around text,
    ``response.output_item.added``, ``response.content_part.added``, then
    ``response.output_text.delta`` s, and when the text ends ``response.output_text.done``,
    ``response.content_part.done``, ``response.output_item.done``; for each function call,
    ``response.output_item.added``, ``response.function_call_arguments.delta`` s, ``.done``
    and ``response.output_item.done``; on the chunk with ``finish_reason``,
    ``response.completed`` (or ``response.incomplete``) with the whole response. After
    that, :attr:`response` is the final response. :meth:`fail` ends a stream that broke.

    :param base: the response as created (id, model, the request's settings echoed).
    :param clock: seconds since the epoch, for ``completed_at``.
    :param ids: makes item ids from a prefix.
    """

    def __init__(self, base: Response, clock: Callable[[], float], ids: Callable[[str], str] = new_id) -> None:
        self.response = base
        self.done = False
        self._clock = clock
        self._ids = ids
        self._seq = 0
        self._started = False
        self._output: list[OutputItem] = []
        self._text: list[str] | None = None  # the open message's text so far
        self._message: OutputMessage | None = None
        self._message_index = 0
        self._calls: dict[int, _Call] = {}  # open function calls by their chunk index
        self._call_order: list[_Call] = []

    def _next(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def feed(self, chunk: ChatCompletionChunk) -> list[StreamEvent]:
        """The events ``chunk`` makes (none once the response is done)."""
        if self.done:
            return []
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(ResponseCreated(sequence_number=self._next(), response=self.response))
            events.append(ResponseInProgress(sequence_number=self._next(), response=self.response))
        if not chunk.choices:
            return events
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            if self._call_order:
                self._close_calls(events)
            if self._message is None:
                self._open_message(events)
            assert self._message is not None and self._text is not None
            self._text.append(delta.content)
            events.append(OutputTextDelta(sequence_number=self._next(), item_id=self._message.id,
                                          output_index=self._message_index, content_index=0, delta=delta.content))
        for part in delta.tool_calls or ():
            call = self._calls.get(part.index)
            if call is None or (part.id is not None and part.id != call.item.call_id):
                self._close_message(events)
                if call is not None:
                    self._close_calls(events)
                fn = part.function
                item = FunctionCallItem(id=self._ids("fc"), call_id=part.id or self._ids("call"),
                                        name=(fn.name if fn else None) or "", arguments="", status="in_progress")
                call = _Call(item, len(self._output))
                self._calls[part.index] = call
                self._call_order.append(call)
                self._output.append(item)
                events.append(OutputItemAdded(sequence_number=self._next(), output_index=call.index, item=item))
            elif part.function is not None and part.function.name and not call.name:
                call.name = part.function.name
            if part.function is not None and part.function.arguments:
                call.arguments.append(part.function.arguments)
                events.append(FunctionCallArgumentsDelta(
                    sequence_number=self._next(), item_id=call.item.id,
                    output_index=call.index, delta=part.function.arguments,
                ))
        if choice.finish_reason is not None:
            status = "incomplete" if choice.finish_reason in INCOMPLETE else "completed"
            self._close_message(events, status)
            self._close_calls(events)
            usage = chunk.usage if isinstance(chunk.usage, Usage) else Usage()
            self.response = finished(self.response, list(self._output), choice.finish_reason, usage,
                                     chunk.agent, int(self._clock()))
            self.done = True
            if self.response.status == "incomplete":
                events.append(ResponseIncomplete(sequence_number=self._next(), response=self.response))
            else:
                events.append(ResponseCompleted(sequence_number=self._next(), response=self.response))
        return events

    def fail(self, error: RequestError) -> list[StreamEvent]:
        """The events ending a stream that broke: ``error``, then ``response.failed`` with
        what was produced so far."""
        self.done = True
        self.response = msgspec.structs.replace(
            self.response, status="failed", output=list(self._output), error=ResponseError(error.code, error.message),
        )
        return [
            ErrorEvent(sequence_number=self._next(), code=error.code, message=error.message, param=error.param),
            ResponseFailed(sequence_number=self._next(), response=self.response),
        ]

    def _open_message(self, events: list[StreamEvent]) -> None:
        item = OutputMessage(id=self._ids("msg"), content=[], status="in_progress")
        self._message = item
        self._text = []
        index = self._message_index = len(self._output)
        self._output.append(item)
        events.append(OutputItemAdded(sequence_number=self._next(), output_index=index, item=item))
        events.append(ContentPartAdded(sequence_number=self._next(), item_id=item.id, output_index=index,
                                       content_index=0, part=OutputText("")))

    def _close_message(self, events: list[StreamEvent], status: str = "completed") -> None:
        item = self._message
        if item is None:
            return
        assert self._text is not None
        text = "".join(self._text)
        index = self._message_index
        part = OutputText(text)
        done = OutputMessage(id=item.id, content=[part], status="incomplete" if status == "incomplete" else "completed")
        self._output[index] = done
        events.append(OutputTextDone(sequence_number=self._next(), item_id=item.id, output_index=index,
                                     content_index=0, text=text))
        events.append(ContentPartDone(sequence_number=self._next(), item_id=item.id, output_index=index,
                                      content_index=0, part=part))
        events.append(OutputItemDone(sequence_number=self._next(), output_index=index, item=done))
        self._message = None
        self._text = None

    def _close_calls(self, events: list[StreamEvent]) -> None:
        for call in self._call_order:
            index = call.index
            arguments = "".join(call.arguments)
            done = FunctionCallItem(id=call.item.id, call_id=call.item.call_id, name=call.name,
                                    arguments=arguments)
            self._output[index] = done
            events.append(FunctionCallArgumentsDone(sequence_number=self._next(), item_id=done.id,
                                                    output_index=index, name=done.name, arguments=arguments))
            events.append(OutputItemDone(sequence_number=self._next(), output_index=index, item=done))
        self._calls.clear()
        self._call_order.clear()


__all__ = [
    "IGNORED_ITEMS",
    "INCOMPLETE",
    "ResponseEvents",
    "calls_in",
    "conversation_items",
    "finished",
    "input_items",
    "item_ids",
    "items_of",
    "messages_of",
    "new_id",
    "output_of",
    "params_of",
    "response_format_of",
    "response_id_of",
    "response_of",
    "responses_tools",
    "tool_choice_of",
    "tool_definitions",
    "usage_of",
]

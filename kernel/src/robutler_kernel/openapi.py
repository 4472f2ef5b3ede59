"""The kernel's OpenAPI 3.1 document, built from the wire types and the route table.

Served at ``GET /openapi.json`` (``openapi.json`` is a reserved agent name). The request
and answer bodies are the msgspec wire structs of :mod:`robutler_specs` (their JSON Schema
from ``msgspec.json.schema_components``), so the document cannot drift from what the
server decodes; the kernel's own routes are listed in :data:`ROUTES`, plugin routes
(``robutler_routes``) are added as the kernel has them. A test checks that every route of
the app is in the document; the soak suite fuzzes every operation with schemathesis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from robutler_specs.responses import DeletedResponse, Response, ResponsesRequest
from robutler_specs.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    CompletionRequest,
    ErrorBody,
    ModelList,
)

if TYPE_CHECKING:
    from .kernel import Kernel

#: The structs whose schemas are components, by name.
TYPES: tuple[type[Any], ...] = (ChatCompletionRequest, ChatCompletion, ChatCompletionChunk, CompletionRequest,
                                 ResponsesRequest, Response, DeletedResponse, ModelList, ErrorBody)


@dataclass(frozen=True)
class Operation:
    """One method on one path: its request body struct and its 200 answer (a struct, a
    JSON value, or ``"stream"`` for a JSON-or-SSE answer)."""

    path: str
    method: str
    summary: str
    body: type[Any] | None = None
    answer: type[Any] | str | None = None
    tag: str = "kernel"


#: The kernel's own routes (the ones ``server/app.py`` declares), in its order.
ROUTES: tuple[Operation, ...] = (
    Operation("/", "get", "Basic health (the same as /health)", tag="health"),
    Operation("/health", "get", "Basic health", tag="health"),
    Operation("/health/detailed", "get", "Every plugin's health checks", tag="health"),
    Operation("/ready", "get", "Readiness: 503 while starting or draining", tag="health"),
    Operation("/live", "get", "Liveness", tag="health"),
    Operation("/openapi.json", "get", "This document"),
    Operation("/v1/models", "get", "The agents, as OpenAI models", answer=ModelList, tag="openai"),
    Operation("/v1/chat/completions", "post", "Chat with the agent named by `model` (JSON, or SSE with stream)",
              body=ChatCompletionRequest, answer="chat", tag="openai"),
    Operation("/v1/completions", "post", "Legacy text completions (`prompt`) of the agent named by `model`",
              body=CompletionRequest, answer="stream", tag="openai"),
    Operation("/v1/responses", "post", "The Responses API on the agent named by `model`",
              body=ResponsesRequest, answer="responses", tag="openai"),
    Operation("/v1/responses/{response_id}", "get", "A stored response", answer=Response, tag="openai"),
    Operation("/v1/responses/{response_id}", "delete", "Delete a stored response", answer=DeletedResponse,
              tag="openai"),
    Operation("/agents", "get", "Search the agents (`q`, `top_k`)", tag="agents"),
    Operation("/{agent}/chat/completions", "post", "Chat with one agent", body=ChatCompletionRequest,
              answer="chat", tag="agents"),
    Operation("/{agent}/responses", "post", "The Responses API on one agent", body=ResponsesRequest,
              answer="responses", tag="agents"),
    Operation("/{agent}/responses/{response_id}", "get", "A stored response of one agent", answer=Response,
              tag="agents"),
    Operation("/{agent}/responses/{response_id}", "delete", "Delete a stored response of one agent",
              answer=DeletedResponse, tag="agents"),
    Operation("/{agent}", "get", "An agent's card: description, tools, endpoints", tag="agents"),
    *(Operation("/{agent}/{endpoint}", method, "A skill's HTTP endpoint (`@http`; it may span several path "
                "segments)", tag="skills") for method in ("get", "post", "put", "patch", "delete")),
)

_REF = "#/components/schemas/{name}"
_ERROR = {"description": "An OpenAI-shaped error", "content": {"application/json": {"schema": {"$ref": _REF.format(name="ErrorBody")}}}}
#: A stream: ``data: <chunk JSON>`` events, then ``data: [DONE]`` (an ``error`` event before it
#: when the stream failed midway).
_SSE = {"text/event-stream": {"schema": {"description": "server-sent events, the last one data: [DONE]"}}}


def _ref(struct: type[Any]) -> dict[str, Any]:
    return {"$ref": _REF.format(name=struct.__name__)}


def _answer(op: Operation) -> dict[str, Any]:
    if op.answer is None:
        content: dict[str, Any] = {"application/json": {"schema": {}}}
    elif op.answer == "chat":
        content = {"application/json": {"schema": _ref(ChatCompletion)}, **_SSE}
    elif op.answer == "responses":
        content = {"application/json": {"schema": _ref(Response)}, **_SSE}
    elif op.answer == "stream":
        content = {"application/json": {"schema": {}}, **_SSE}
    else:
        assert isinstance(op.answer, type)
        content = {"application/json": {"schema": _ref(op.answer)}}
    return {"description": "OK", "content": content}


def _parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [{"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[^/]+$", "minLength": 1}} for name in names]


def _operation(op: Operation) -> dict[str, Any]:
    item: dict[str, Any] = {
        "summary": op.summary, "tags": [op.tag],
        "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'root'}",
        "responses": {"200": _answer(op), "default": _ERROR},
    }
    if op.body is not None:
        item["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
    parameters = _parameters(op.path)
    if op.path == "/agents":
        parameters += [{"name": "q", "in": "query", "schema": {"type": "string"}},
                       {"name": "top_k", "in": "query", "schema": {"type": "integer"}}]
    if parameters:
        item["parameters"] = parameters
    return item


def plugin_operations(kernel: Kernel) -> list[Operation]:
    """The routes plugins add (``robutler_routes``), one operation per method."""
    return [
        Operation(route.path, method.lower(), f"{plugin} plugin route", tag=f"plugin:{plugin}")
        for plugin, routes in kernel.hooks.robutler_routes(kernel).items()
        for route in routes
        for method in route.methods
        if method.upper() != "HEAD" and "{path:" not in route.path
    ]


def document(kernel: Kernel | None = None, *, title: str = "Robutler", version: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the kernel's routes (and ``kernel``'s plugin routes)."""
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version

        try:
            version = package_version("robutler-kernel")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree only
            version = "0"
    _, components = msgspec.json.schema_components(TYPES, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    operations = [*ROUTES, *(plugin_operations(kernel) if kernel is not None else ())]
    for op in operations:
        paths.setdefault(op.path, {}).setdefault(op.method, _operation(op))
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Agents over an OpenAI-compatible HTTP API. Bodies are the wire types of robutler_specs."},
        "paths": paths,
        "components": {"schemas": components},
    }


__all__ = ["ROUTES", "TYPES", "Operation", "document", "plugin_operations"]

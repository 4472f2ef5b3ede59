"""Bad input never becomes a 500: JSON nesting and body sizes on every route, a model's
tool-call arguments, wrong methods and trailing slashes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import robutler_plugin_scripted
from robutler_kernel.testing import make_kernel
from robutler_specs import (
    FunctionCall,
    HttpRequest,
    HttpRoute,
    LLMCall,
    LLMResult,
    Message,
    RequestContext,
    Skill,
    ToolCall,
    hookimpl,
    http,
    tool,
)
from robutler_specs.jsondepth import MAX_JSON_DEPTH, too_deep

LIMIT = 32 * 1024


class Api(Skill):
    name = "api"

    @http("echo", methods=["POST"])
    def echo(self, ctx: RequestContext, request: HttpRequest) -> Any:
        return {"got": request.json()}


class Routes:
    __name__ = "routes"

    @hookimpl
    def robutler_routes(self) -> list[HttpRoute]:
        async def for_agent(request: HttpRequest, ctx: RequestContext) -> Any:
            return {"agent": ctx.agent.name, "got": request.json()}

        async def plain(request: HttpRequest) -> Any:
            return {"got": request.json()}

        return [
            HttpRoute("/things/{agent}/echo", for_agent, methods=("POST",)),
            HttpRoute("/things/echo", plain, methods=("POST",)),
        ]


ROUTES = [
    "/a/chat/completions", "/v1/chat/completions", "/v1/completions", "/v1/responses", "/a/responses",
    "/a/echo", "/things/a/echo", "/things/echo",
]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    kernel = make_kernel(
        {"a": {"model": "scripted/echo", "skills": {"api": None}}},
        plugins=[robutler_plugin_scripted, Api, Routes()],
        server={"metrics_port": None, "max_body_bytes": LIMIT},
    )
    with TestClient(kernel.asgi_app()) as test_client:
        yield test_client


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep (objects and arrays alternating)."""
    return json.loads(nested_text(depth))


def nested_text(depth: int) -> str:
    """The JSON text of :func:`nested` (built as text: too deep for ``json.dumps``)."""
    opening = "".join('[' if level % 2 else '{"k": ' for level in reversed(range(depth)))
    closing = "".join(']' if level % 2 else '}' for level in range(depth))
    return opening + "1" + closing


PLACEHOLDER = "@@value@@"


def document(route: str, where: str, depth: int) -> str:
    """The body text of ``route`` with a value ``depth`` levels deep at ``where``."""
    if where == "arguments":
        return json.dumps(body_for(route, where, PLACEHOLDER)).replace(PLACEHOLDER, json.dumps(nested_text(depth))[1:-1])
    return json.dumps(body_for(route, where, PLACEHOLDER)).replace(json.dumps(PLACEHOLDER), nested_text(depth))


def body_for(route: str, where: str, value: Any) -> dict[str, Any]:
    """A request body for ``route`` with ``value`` placed at ``where``."""
    if route in ("/a/echo", "/things/a/echo", "/things/echo"):
        return {where: value}
    if route == "/v1/completions":
        return {"model": "a", "prompt": "hi", where: value}
    if route.endswith("/responses"):
        return {"model": "a", "input": "hi", where: value}
    body: dict[str, Any] = {"model": "a", "messages": [{"role": "user", "content": "hi"}]}
    if where == "tools":
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": value}}]
    elif where == "messages":
        body["messages"] = [{"role": "user", "content": [{"type": "text", "text": "hi", "extra": value}]}]
    elif where == "arguments":
        body["messages"] = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": value if value == PLACEHOLDER else json.dumps(value)}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ]
    else:
        body[where] = value
    return body


def _error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    where=st.sampled_from(["metadata", "response_format", "tools", "messages", "arguments"]),
    depth=st.one_of(st.integers(1, MAX_JSON_DEPTH + 8), st.integers(MAX_JSON_DEPTH, 3000)),
)
def test_nesting_is_a_400_naming_the_field_past_the_limit_and_never_a_500(
    client: TestClient, route: str, where: str, depth: int
) -> None:
    body = document(route, where, depth)
    assert len(body) <= LIMIT  # (the size property below covers bodies over the limit)
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code != 500, response.text
    too = too_deep(body) is not None
    if too:
        assert response.status_code == 400, response.text
        error = _error(response)
        assert error["code"] == "json_too_deep"
        assert str(MAX_JSON_DEPTH) in error["message"]
        if route.startswith(("/a/chat", "/v1/chat", "/v1/completions")):
            field = "messages" if where == "arguments" else where
            assert error["param"] == field
        elif route.endswith("/responses"):
            assert error["param"] == where
    else:
        assert response.status_code in (200, 400), response.text


def test_the_limit_counts_levels_of_the_whole_document() -> None:
    assert too_deep(nested_text(MAX_JSON_DEPTH)) is None
    assert too_deep(nested_text(MAX_JSON_DEPTH + 1)) == "k[0].k[0].k[0]..."
    assert nested(3) == {"k": [{"k": 1}]}
    # Brackets inside strings are text, not nesting.
    assert too_deep(json.dumps({"s": "[" * 500, "t": "{\\\"" * 100})) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), size=st.integers(0, 3 * LIMIT), chunked=st.booleans())
def test_a_body_over_the_limit_is_a_413_and_nothing_is_a_500(
    client: TestClient, route: str, size: int, chunked: bool
) -> None:
    base = json.dumps(body_for(route, "metadata", "")).encode()
    pad = max(size - len(base), 0)
    body = json.dumps(body_for(route, "metadata", "x" * pad)).encode()
    content: Any = iter([body[i : i + 1000] for i in range(0, len(body), 1000)]) if chunked else body
    response = client.post(route, content=content, headers={"content-type": "application/json"})
    assert response.status_code != 500, response.text
    if len(body) > LIMIT:
        assert response.status_code == 413
        assert "server.max_body_bytes" in _error(response)["message"]
    else:
        assert response.status_code in (200, 400)


@pytest.mark.parametrize("route", ROUTES)
def test_malformed_json_is_a_400_on_every_route(client: TestClient, route: str) -> None:
    response = client.post(route, content=b'{"messages": [', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_json"


# -- a model's tool-call arguments ----------------------------------------------------------


class DeepArguments(Skill):
    """A provider whose model first calls a tool with arguments nested too deep, then
    answers with what the tool said."""

    name = "deep"
    provider = "deep"

    @tool
    def lookup(self, key: Any) -> str:
        """Look something up."""
        return "found"

    @hookimpl
    def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult | None:
        if call.provider != "deep":
            return None
        results = [m for m in call.messages if m.role == "tool"]
        if results:
            return LLMResult(message=Message(role="assistant", content=f"tool said: {results[-1].text()}"))
        arguments = '{"key": ' + nested_text(500) + "}"
        return LLMResult(
            message=Message(role="assistant", tool_calls=[ToolCall(id="t1", function=FunctionCall("lookup", arguments))]),
            finish_reason="tool_calls",
        )

    @hookimpl
    def llm_stream(self, ctx: RequestContext, call: LLMCall) -> None:
        return None


def test_a_models_deep_tool_arguments_are_a_tool_error_the_model_reads() -> None:
    kernel = make_kernel({"a": {"model": "deep/m", "skills": {"deep": None}}}, plugins=[DeepArguments])
    with TestClient(kernel.asgi_app()) as test_client:
        response = test_client.post("/a/chat/completions", json={"messages": [{"role": "user", "content": "go"}]})
    assert response.status_code == 200, response.text
    answer = response.json()["choices"][0]["message"]["content"]
    assert answer.startswith("tool said: Error: invalid arguments for tool 'lookup'")
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in answer


# -- methods and paths ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/a/chat/completions", "POST"),
    ("GET", "/v1/chat/completions", "POST"),
    ("DELETE", "/v1/models", "GET"),
    ("PATCH", "/v1/completions", "POST"),
    ("PUT", "/health", "GET"),
    ("GET", "/a/echo", "POST"),
    ("GET", "/things/a/echo", "POST"),
])
def test_a_wrong_method_is_a_405_with_allow(client: TestClient, method: str, path: str, allow: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert allow in response.headers["allow"].split(", ")
    error = _error(response)
    assert error["code"] == "method_not_allowed"
    assert f"{method} is not allowed on {path}" in error["message"] and allow in error["message"]
    assert f"use {method}" not in error["message"]


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/a/chat/completions/"),
    ("POST", "/v1/chat/completions/"),
    ("GET", "/health/"),
    ("GET", "/a/"),
    ("POST", "/a/echo/"),
])
def test_a_trailing_slash_is_a_404_that_says_so(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404
    error = _error(response)
    assert error["code"] == "route_not_found"
    assert "trailing slash" in error["message"] and path.rstrip("/") in error["message"]
    assert "not allowed" not in error["message"]

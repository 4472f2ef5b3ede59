"""Fuzzing: schemathesis over every operation of the kernel's OpenAPI document
(``GET /openapi.json``), against a served kernel; hypothesis on the wire types.

A served kernel never answers 5xx to what a client sends, its JSON answers match the
document's schemas, and its errors are OpenAI-shaped. The agents: ``assistant`` on the
offline scripted model and ``upstream`` on the openai plugin in front of the fake upstream
(so fuzzed parameters reach a provider plugin and come back through its error mapping).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from robutler_specs.responses import Response, ResponsesRequest
from robutler_specs.wire import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, CompletionRequest

from .harness import FakeUpstream, Row, Summary, openai_skill, serve, server_settings


@pytest.fixture(scope="session")
def fuzz_server(workdir: Path, fake_upstream: FakeUpstream) -> Iterator[Any]:
    config = {"server": server_settings(max_body_bytes=262144),
              "agents": {"assistant": {"model": "scripted/echo", "description": "echoes"},
                         "upstream": {"model": "openai/fake-model",
                                      "skills": {"openai": openai_skill(fake_upstream.base_url, timeout=10)}}}}
    process = serve(workdir, config, name="fuzz.yaml")
    yield process
    process.stop()


def _operations() -> list[Any]:
    """Every operation of the kernel's document (built offline: the served one is the same)."""
    from robutler_kernel.openapi import document

    schema = schemathesis.openapi.from_dict(document())
    return [result.ok() for result in schema.get_all_operations()]


OPERATIONS = _operations()


def _fuzz_row(summary: Summary) -> Row:
    """The summary row all fuzzed operations add to."""
    for row in summary.rows:
        if row.scenario.startswith("schemathesis"):
            return row
    return summary.add(Row("schemathesis: every operation of /openapi.json", 0, 0, 0, extra={"statuses": {}}))


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_every_route(operation: Any, fuzz_server: Any, soak_options: dict[str, Any], summary: Summary) -> None:
    """No 5xx; JSON answers match their schemas; the content type is the documented one;
    errors are OpenAI-shaped."""

    row = _fuzz_row(summary)

    @settings(max_examples=soak_options["examples"], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        # Aim the {agent} parameter at a real agent most of the time, so bodies reach the agents.
        if case.path_parameters and "agent" in case.path_parameters:
            pick = hash(repr(case.body)) % 3
            if pick:
                case.path_parameters["agent"] = "upstream" if pick == 1 else "assistant"
        response = case.call(base_url=fuzz_server.url, timeout=30)
        row.requests += 1
        statuses = row.extra["statuses"]
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        row.note = f"{len(OPERATIONS)} operations; statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        case.validate_response(response, checks=[not_a_server_error, content_type_conformance,
                                                 response_schema_conformance])
        if response.status_code >= 400 and "json" in str(response.headers.get("content-type")):
            body = response.json()
            assert isinstance(body.get("error"), dict) and "message" in body["error"], body
        row.ok += 1

    try:
        check()
    finally:
        row.errors = row.requests - row.ok


# -- hypothesis on the wire types --------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=20)

_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer"]) | st.text(max_size=5)},
    optional={"content": st.none() | st.text(max_size=40) | st.lists(st.dictionaries(st.text(max_size=6), _json, max_size=3), max_size=3),
              "name": st.text(max_size=10), "tool_call_id": st.text(max_size=10), "extra": _json},
)
_chat_body = st.fixed_dictionaries(
    {"messages": st.lists(_message, max_size=4)},
    optional={"model": st.text(max_size=10) | st.none(), "stream": st.booleans() | _json,
              "temperature": st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3), "max_tokens": st.integers(),
              "tools": st.lists(_json, max_size=2), "stop": st.text(max_size=5) | st.lists(st.text(max_size=5)),
              "stream_options": _json, "response_format": _json, "n": st.integers(-2, 3)},
)


@settings(max_examples=300, deadline=None)
@given(body=_chat_body)
def test_chat_request_decodes_or_refuses(body: dict[str, Any]) -> None:
    """Any JSON object decodes into the wire type or raises msgspec's ValidationError;
    what decodes encodes back to JSON that decodes to the same struct."""
    raw = json.dumps(body).encode()
    try:
        request = msgspec.json.decode(raw, type=ChatCompletionRequest)
    except msgspec.ValidationError:
        return
    assert msgspec.json.decode(msgspec.json.encode(request), type=ChatCompletionRequest) == request


def strategy(info: Any) -> st.SearchStrategy[Any]:
    """A hypothesis strategy for a msgspec type (``msgspec.inspect.type_info``)."""
    if isinstance(info, mi.StructType):
        fields = {f.encode_name: strategy(f.type) for f in info.fields if f.required}
        optional = {f.encode_name: strategy(f.type) for f in info.fields if not f.required}
        built = st.fixed_dictionaries(fields, optional=optional)
        if info.tag_field is not None:
            built = built.map(lambda d, tf=info.tag_field, tag=info.tag: {**d, tf: tag})
        return built
    if isinstance(info, mi.UnionType):
        return st.one_of(*(strategy(t) for t in info.types))
    if isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return st.lists(strategy(info.item_type), max_size=3)
    if isinstance(info, mi.DictType):
        return st.dictionaries(st.text(max_size=8), strategy(info.value_type), max_size=3)
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(info.values)
    simple = {mi.StrType: st.text(max_size=20), mi.IntType: st.integers(-(2**40), 2**40), mi.BoolType: st.booleans(),
              mi.FloatType: st.floats(allow_nan=False, allow_infinity=False), mi.NoneType: st.none(), mi.AnyType: _json}
    for kind, value in simple.items():
        if isinstance(info, kind):
            return value
    return _json


WIRE_TYPES = [ChatCompletionRequest, CompletionRequest, ResponsesRequest, ChatCompletion, ChatCompletionChunk,
              Response]


@pytest.mark.parametrize("struct", WIRE_TYPES, ids=[t.__name__ for t in WIRE_TYPES])
def test_wire_types_round_trip(struct: type[Any], soak_options: dict[str, Any]) -> None:
    """Values shaped like each wire type (built from msgspec's own view of it) convert to it
    or are refused with a ValidationError, and what converts survives encode and decode."""

    @settings(max_examples=max(200, soak_options["examples"]), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(value=strategy(mi.type_info(struct)))
    def check(value: Any) -> None:
        try:
            decoded = msgspec.convert(value, struct)
        except msgspec.ValidationError:
            return  # constraints the shape alone does not carry
        assert msgspec.json.decode(msgspec.json.encode(decoded), type=struct) == decoded

    check()


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_chat_body, path=st.sampled_from(["/v1/chat/completions", "/assistant/chat/completions",
                                               "/upstream/chat/completions", "/v1/responses", "/v1/completions"]))
def test_served_kernel_never_500s_on_bodies(fuzz_server: Any, body: dict[str, Any], path: str) -> None:
    """Fuzzed chat bodies (valid and not) sent to the served kernel: never a 5xx other than
    the provider statuses (502/503/504 name the upstream), always an OpenAI-shaped error."""
    import httpx

    if "model" not in body and path.startswith("/v1"):
        body = {**body, "model": "assistant"}
    response = httpx.post(fuzz_server.url + path, json=body, timeout=30)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert "message" in response.json()["error"]

"""Tests for robutler_specs wire types, Identity, RequestContext and the RequestError family."""

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_specs import (
    ANONYMOUS,
    SCOPES,
    AgentSpec,
    BadRequest,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ContentBlocked,
    Delta,
    ErrorBody,
    Forbidden,
    FunctionCall,
    Identity,
    Message,
    NotFound,
    PayloadTooLarge,
    PaymentRequired,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestContext,
    RequestError,
    ServiceUnavailable,
    ToolCall,
    ToolDefinition,
    Unauthorized,
    Usage,
    UsageRecord,
    build_tool_spec,
    tool,
)
from robutler_specs.wire import FunctionDefinition

decode_request = msgspec.json.Decoder(ChatCompletionRequest).decode


def body(**fields: Any) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": "hi"}], **fields}).encode()


# -- decoding requests ------------------------------------------------------------------------


def test_decode_string_content() -> None:
    req = decode_request(body())
    assert req.messages == [Message(role="user", content="hi")]
    assert req.stream is False and req.model is None and req.tools is None


def test_decode_content_parts_list() -> None:
    parts = [
        {"type": "text", "text": "what is "},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        {"type": "text", "text": "this?"},
    ]
    req = decode_request(json.dumps({"messages": [{"role": "user", "content": parts}]}))
    assert req.messages[0].content == parts
    assert req.messages[0].text() == "what is this?"


def test_decode_null_content() -> None:
    req = decode_request(json.dumps({"messages": [{"role": "assistant", "content": None}]}))
    assert req.messages[0].content is None
    assert req.messages[0].text() == ""


def test_decode_assistant_tool_calls_and_tool_results() -> None:
    raw = {
        "model": "assistant",
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather.",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ],
        "tool_choice": "auto",
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "stop": ["\n"],
    }
    req = decode_request(json.dumps(raw))
    call = req.messages[1].tool_calls[0]  # type: ignore[index]
    assert call == ToolCall(id="call_1", function=FunctionCall("get_weather", '{"city": "Paris"}'))
    assert req.messages[2].role == "tool"
    assert req.messages[2].tool_call_id == "call_1"
    assert req.messages[2].text() == "sunny"
    assert req.tools is not None and req.tools[0].function.name == "get_weather"
    assert req.stream is True
    assert req.stream_options is not None and req.stream_options.include_usage is True
    assert req.temperature == 0.2 and req.stop == ["\n"] and req.tool_choice == "auto"


def test_unknown_fields_are_ignored_at_every_level() -> None:
    raw = {
        "messages": [{"role": "user", "content": "hi", "refusal": None, "audio": {"id": "a"}}],
        "logit_bias": {"50256": -100},
        "metadata": {"k": "v"},
        "store": True,
    }
    req = decode_request(json.dumps(raw))
    assert req.messages == [Message(role="user", content="hi")]


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"messages": [{"role": "user", "content": 5}]}, "$.messages[0].content"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "$.messages[0].role"),
        ({"messages": [{"role": "user", "content": "a"}, {"content": "b"}]}, "$.messages[1]"),
        ({"messages": [{"role": "user"}], "stream": "yes"}, "$.stream"),
        ({"messages": [{"role": "user"}], "temperature": "hot"}, "$.temperature"),
        ({"messages": "hello"}, "$.messages"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]},
            "$.messages[0].tool_calls[0].function",
        ),
    ],
)
def test_wrong_types_raise_with_the_field_path(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        decode_request(json.dumps(raw))
    assert path in str(info.value)


def test_missing_messages_is_an_error() -> None:
    with pytest.raises(msgspec.ValidationError, match="messages"):
        decode_request(b'{"model": "x"}')


# -- encoding -----------------------------------------------------------------------------------


def encode(value: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(msgspec.json.encode(value))
    return result


def test_encoding_a_message_omits_unset_optional_fields() -> None:
    assert encode(Message(role="user", content="hi")) == {"role": "user", "content": "hi"}
    assert encode(Message(role="tool", content="42", tool_call_id="c1")) == {
        "role": "tool",
        "content": "42",
        "tool_call_id": "c1",
    }


def test_encoding_a_request_omits_unset_fields() -> None:
    req = ChatCompletionRequest(messages=[Message(role="user", content="hi")], temperature=0.5)
    assert encode(req) == {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}


def test_request_round_trips_through_json() -> None:
    req = ChatCompletionRequest(
        messages=[
            Message(role="system", content="be brief"),
            Message(role="user", content=[{"type": "text", "text": "hi"}]),
        ],
        model="assistant",
        stream=True,
        max_tokens=10,
        stop="END",
    )
    assert decode_request(msgspec.json.encode(req)) == req


def test_encoded_tool_calls_carry_type_function() -> None:
    # OpenAI's wire format requires "type": "function" on every assistant tool call;
    # the OpenAI API rejects a conversation whose tool_calls lack it.
    message = Message(
        role="assistant",
        tool_calls=[ToolCall(id="call_1", function=FunctionCall("f", "{}"))],
    )
    assert encode(message)["tool_calls"][0]["type"] == "function"


def test_encoded_tool_definitions_carry_type_function() -> None:
    # The OpenAI API rejects "tools" entries without "type": "function".
    definition = ToolDefinition(function=FunctionDefinition(name="f", parameters={"type": "object"}))
    assert encode(definition) == {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object"}},
    }


def test_encoded_chunks_carry_their_object_type() -> None:
    chunk = ChatCompletionChunk(
        id="chatcmpl-1", created=1, model="a", choices=[ChunkChoice(0, Delta(content="x"))]
    )
    out = encode(chunk)
    assert out["object"] == "chat.completion.chunk"
    assert out["choices"] == [
        {"index": 0, "delta": {"content": "x"}, "finish_reason": None, "logprobs": None}
    ]
    assert "usage" not in out


def test_encoded_completion_has_the_openai_shape() -> None:
    completion = ChatCompletion(
        id="chatcmpl-1",
        created=1,
        model="a",
        choices=[Choice(0, Message(role="assistant", content="hello"), "stop")],
        usage=Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4),
    )
    out = encode(completion)
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def test_encoded_usage_always_has_the_three_token_counts() -> None:
    # OpenAI clients read usage.prompt_tokens etc.; they must be numbers even when 0.
    assert encode(Usage()) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_usage_extensions_are_absent_unless_set() -> None:
    out = encode(Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3))
    assert "cost" not in out and "estimated" not in out
    assert encode(Usage(1, 2, 3, cost=0.5, estimated=True))["estimated"] is True


def test_error_body_shape() -> None:
    out = encode(msgspec.convert(BadRequest("nope", param="messages").to_body(), ErrorBody))
    assert out == {
        "error": {
            "message": "nope",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "invalid_request",
        }
    }


# -- Message.text, Usage.add ---------------------------------------------------------------------


def test_message_text_joins_only_text_parts() -> None:
    message = Message(
        role="user",
        content=[
            {"type": "text", "text": "a"},
            {"type": "image_url", "image_url": {"url": "u"}, "text": "ignored"},
            {"type": "text"},
            {"type": "text", "text": "b"},
        ],
    )
    assert message.text() == "ab"
    assert Message(role="user", content="plain").text() == "plain"
    assert Message(role="user", content=[]).text() == ""


@given(st.lists(st.text(max_size=20), max_size=8))
def test_message_text_of_text_parts_is_their_concatenation(texts: list[str]) -> None:
    message = Message(role="user", content=[{"type": "text", "text": t} for t in texts])
    assert message.text() == "".join(texts)


def test_usage_add_sums_in_place_and_keeps_estimated_sticky() -> None:
    total = Usage(1, 2, 3)
    total.add(Usage(10, 20, 30, estimated=True))
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (11, 22, 33)
    assert total.estimated is True
    total.add(Usage(1, 1, 2))
    assert total.estimated is True
    assert total.total_tokens == 35


_counts = st.integers(min_value=0, max_value=10**6)


@given(st.lists(st.tuples(_counts, _counts), max_size=10))
def test_usage_add_is_a_sum(pairs: list[tuple[int, int]]) -> None:
    total = Usage()
    for p, c in pairs:
        total.add(Usage(p, c, p + c))
    assert total.prompt_tokens == sum(p for p, _ in pairs)
    assert total.completion_tokens == sum(c for _, c in pairs)
    assert total.total_tokens == total.prompt_tokens + total.completion_tokens
    assert not total.estimated


# -- Identity ------------------------------------------------------------------------------------


def test_anonymous_identity_sees_only_public_things() -> None:
    assert ANONYMOUS.allows("all")
    assert not ANONYMOUS.allows("owner")
    assert not ANONYMOUS.allows("admin")


def test_admin_may_do_what_an_owner_may() -> None:
    admin = Identity(user_id="u", scopes=("admin",))
    owner = Identity(user_id="u", scopes=("owner",))
    assert admin.allows("owner") and admin.allows("admin") and admin.allows("all")
    assert owner.allows("owner") and not owner.allows("admin")


def test_unknown_scopes_grant_nothing_extra() -> None:
    assert not Identity(scopes=("superuser", "root")).allows("owner")


@given(
    st.lists(st.sampled_from([*SCOPES, "reader", "billing"]), max_size=5).map(tuple),
    st.sampled_from(SCOPES),
)
def test_identity_allows_follows_the_scope_hierarchy(scopes: tuple[str, ...], wanted: str) -> None:
    identity = Identity(scopes=scopes)
    rank = {"all": 0, "owner": 1, "admin": 2}
    best = max((rank[s] for s in scopes if s in rank), default=0)
    assert identity.allows(wanted) == (rank[wanted] <= best)
    # monotonic: allowing a scope implies allowing every lower scope
    if identity.allows(wanted):
        assert all(identity.allows(s) for s in SCOPES if rank[s] <= rank[wanted])


# -- RequestContext -----------------------------------------------------------------------------


AGENT = AgentSpec(name="a", model="scripted/echo")


def _ctx() -> RequestContext:
    return RequestContext(AGENT, [Message(role="user", content="hi")])


def test_request_tools_are_per_context() -> None:
    @tool(scope="admin")
    def reset_password(user: str) -> str:
        """Reset a password."""
        return user

    first, second = _ctx(), _ctx()
    spec = first.add_tool(reset_password, plugin="auth")
    assert spec.name == "reset_password" and spec.plugin == "auth" and spec.scope == "admin"
    assert set(first.extra_tools) == {"reset_password"}
    assert dict(second.extra_tools) == {}
    # A third context created after the first got its tool still starts empty.
    assert dict(_ctx().extra_tools) == {}


@given(st.lists(st.sets(st.sampled_from(["t1", "t2", "t3", "t4"])), min_size=1, max_size=5))
def test_request_tools_never_leak_between_contexts(per_context: list[set[str]]) -> None:
    def make(name: str) -> Any:
        def fn() -> str:
            return name

        return tool(name=name)(fn)

    contexts = [_ctx() for _ in per_context]
    for ctx, names in zip(contexts, per_context, strict=True):
        for name in sorted(names):
            ctx.add_tool(make(name))
    for ctx, names in zip(contexts, per_context, strict=True):
        assert set(ctx.extra_tools) == names


def test_add_tool_accepts_a_tool_spec_and_the_last_of_a_name_wins() -> None:
    ctx = _ctx()

    def one() -> str:
        return "1"

    def two() -> str:
        return "2"

    ctx.add_tool(tool(name="n")(one))
    ctx.add_tool(build_tool_spec(two, name="n"))
    assert ctx.extra_tools["n"].fn() == "2"


def test_total_usage_sums_llm_records_only() -> None:
    ctx = _ctx()
    ctx.usage += [
        UsageRecord(kind="llm", name="scripted/echo", prompt_tokens=10, completion_tokens=5),
        UsageRecord(kind="tool", name="search", prompt_tokens=1000, completion_tokens=1000),
        UsageRecord(kind="llm", name="scripted/echo", prompt_tokens=7, completion_tokens=3),
        UsageRecord(kind="handoff", name="h", prompt_tokens=99),
    ]
    total = ctx.total_usage()
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (17, 8, 25)
    assert not total.estimated


def test_total_usage_is_estimated_if_any_llm_record_is() -> None:
    ctx = _ctx()
    ctx.usage += [
        UsageRecord(kind="llm", name="m", prompt_tokens=1, completion_tokens=1),
        UsageRecord(kind="llm", name="m", prompt_tokens=1, completion_tokens=1, estimated=True),
    ]
    assert ctx.total_usage().estimated is True
    empty = _ctx().total_usage()
    assert (empty.prompt_tokens, empty.completion_tokens, empty.total_tokens) == (0, 0, 0)


def test_context_defaults_come_from_the_agent() -> None:
    ctx = RequestContext(
        AgentSpec(name="a", model=["openai/x", "scripted/y"]),
        [Message(role="user", content="1"), Message(role="assistant", content="2")],
    )
    assert ctx.model == ["openai/x", "scripted/y"]
    assert ctx.identity == ANONYMOUS
    assert ctx.request_id.startswith("chatcmpl-")
    assert ctx.request_id != _ctx().request_id
    assert ctx.user_message is not None and ctx.user_message.text() == "1"


# -- RequestError family --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "status", "type_", "code"),
    [
        (RequestError, 400, "invalid_request_error", "invalid_request"),
        (BadRequest, 400, "invalid_request_error", "invalid_request"),
        (ContentBlocked, 400, "invalid_request_error", "content_blocked"),
        (Unauthorized, 401, "authentication_error", "invalid_api_key"),
        (PaymentRequired, 402, "insufficient_quota", "insufficient_credits"),
        (Forbidden, 403, "permission_error", "forbidden"),
        (NotFound, 404, "not_found_error", "not_found"),
        (PayloadTooLarge, 413, "invalid_request_error", "request_too_large"),
        (RateLimited, 429, "rate_limit_error", "rate_limit_exceeded"),
        (ProviderError, 502, "api_error", "provider_error"),
        (ServiceUnavailable, 503, "api_error", "service_unavailable"),
        (ProviderTimeout, 504, "api_error", "provider_timeout"),
    ],
)
def test_request_errors_have_status_type_and_code(
    cls: type[RequestError], status: int, type_: str, code: str
) -> None:
    error = cls("what went wrong")
    assert error.status == status
    assert error.type == type_
    assert error.code == code
    assert str(error) == "what went wrong"
    assert error.to_body() == {
        "error": {"message": "what went wrong", "type": type_, "param": None, "code": code}
    }
    assert isinstance(error, RequestError)


def test_request_error_overrides_are_per_instance() -> None:
    error = PaymentRequired(
        "top up", status=403, code="limit", param="model", headers={"X-A": "1"}, plugin="payments"
    )
    assert error.status == 403
    assert error.to_body()["error"] == {
        "message": "top up",
        "type": "insufficient_quota",
        "param": "model",
        "code": "limit",
    }
    assert error.headers == {"X-A": "1"} and error.plugin == "payments"
    # The class default is untouched.
    assert PaymentRequired("again").status == 402


def test_to_body_is_a_valid_error_body() -> None:
    body_ = Unauthorized("no key", param="authorization").to_body()
    parsed = msgspec.convert(body_, ErrorBody)
    assert parsed.error.message == "no key" and parsed.error.code == "invalid_api_key"

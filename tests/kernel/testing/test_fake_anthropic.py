"""FakeAnthropic, driven by the official ``anthropic`` SDK over real loopback HTTP: what
the fake sends must be what the SDK's own ``messages.create`` and ``messages.stream`` parse."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from robutler_kernel.testing import AnthropicReply, FakeAnthropic
from robutler_kernel.testing.fake_anthropic import AnthropicAnswer, check_conversation

USER = [{"role": "user", "content": "hello there world"}]
WEATHER = {"name": "get_weather", "description": "Weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropic) -> FakeAnthropic:
    server.reset()
    server.api_key = None
    return server


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0, timeout=5) as sdk:
        yield sdk


def test_base_url_is_the_api_root() -> None:
    with FakeAnthropic() as fake:
        assert fake.port > 0 and fake.base_url == f"http://127.0.0.1:{fake.port}"


def test_default_reply_echoes_the_last_user_turn(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    message = client.messages.create(model="claude-x", max_tokens=100, system="Be brief.", messages=USER)  # type: ignore[arg-type]
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "hello there world")]
    assert message.stop_reason == "end_turn" and message.model == "claude-x" and message.role == "assistant"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)  # words, system included
    assert message.usage.cache_read_input_tokens == 0 and message.id.startswith("msg_")


def test_records_the_request_and_the_sdks_auth_headers(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    client.messages.create(model="claude-x", max_tokens=10, messages=USER, stop_sequences=["END"])  # type: ignore[arg-type]
    sent = fake.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.json == {"model": "claude-x", "max_tokens": 10, "messages": USER, "stop_sequences": ["END"]}
    # The 2.x SDK sends its api_key as a bearer token; the API (and the fake) also take x-api-key.
    assert sent.headers.get("x-api-key") == "sk-ant-test" or sent.headers["authorization"] == "Bearer sk-ant-test"
    assert sent.headers["anthropic-version"]


def test_a_missing_or_wrong_key_is_401_in_anthropics_shape(fake: FakeAnthropic) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": USER}
    missing = httpx.post(f"{fake.base_url}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert missing.status_code == 401
    assert missing.json() == {"type": "error", "error": {"type": "authentication_error",
                                                         "message": "x-api-key header is required"}}
    fake.api_key = "the-right-key"
    ok = httpx.post(f"{fake.base_url}/v1/messages", json=body,
                    headers={"anthropic-version": "2023-06-01", "x-api-key": "the-right-key"})
    assert ok.status_code == 200 and ok.json()["content"][0]["text"] == "hello there world"
    wrong = anthropic.Anthropic(base_url=fake.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        wrong.messages.create(model="m", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert caught.value.status_code == 401 and caught.value.api_message == "invalid x-api-key"


def test_the_version_header_and_required_fields_are_checked(fake: FakeAnthropic) -> None:
    headers = {"x-api-key": "k"}
    no_version = httpx.post(f"{fake.base_url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER},
                            headers=headers)
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    no_max = httpx.post(f"{fake.base_url}/v1/messages", json={"model": "m", "messages": USER},
                        headers={**headers, "anthropic-version": "2023-06-01"})
    assert no_max.status_code == 400 and no_max.json()["error"] == {
        "type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert httpx.get(f"{fake.base_url}/v1/nothing").status_code == 404


def test_scripted_text_with_cache_usage_and_stop_sequence(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.add_reply("Done.", stop_reason="stop_sequence", stop_sequence="END", model="claude-x-2025",
                   usage={"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 100,
                          "cache_creation_input_tokens": 20})
    message = client.messages.create(model="claude-x", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert (message.stop_reason, message.stop_sequence, message.model) == ("stop_sequence", "END", "claude-x-2025")
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens) == (3, 2, 100, 20)
    # the queue is consumed: the next call echoes again
    assert client.messages.create(model="m", max_tokens=5, messages=USER).content[0].text == "hello there world"  # type: ignore[arg-type, union-attr]


def test_tool_use_blocks(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.add_reply("Let me look.", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}, "id": "toolu_1"},
                                              {"name": "get_weather", "input": '{"city": "Rome"}'}])
    message = client.messages.create(model="m", max_tokens=50, messages=USER, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    assert message.stop_reason == "tool_use"
    text, first, second = message.content
    assert text.type == "text" and text.text == "Let me look."
    assert first.type == "tool_use" and (first.id, first.name, first.input) == ("toolu_1", "get_weather", {"city": "Oslo"})
    assert second.type == "tool_use" and second.input == {"city": "Rome"} and second.id.startswith("toolu_")
    assert fake.last_request.json["tools"] == [WEATHER]


def test_stream_parses_with_the_sdks_accumulator(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.add_reply("one two three", usage={"input_tokens": 4, "output_tokens": 3, "cache_read_input_tokens": 7})
    with client.messages.stream(model="m", max_tokens=50, messages=USER) as stream:  # type: ignore[arg-type]
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["one ", "two ", "three"]
    assert final.content[0].text == "one two three" and final.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (4, 3, 7)


def test_streamed_tool_use_assembles_to_the_same_input(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    uses = [{"name": "get_weather", "input": {"city": "Oslo", "days": [1, 2, 3]}, "id": "toolu_a"},
            {"name": "noop", "input": {}, "id": "toolu_b"}]
    fake.add_reply(tool_uses=uses)
    with client.messages.stream(model="m", max_tokens=50, messages=USER, tools=[WEATHER]) as stream:  # type: ignore[arg-type, list-item]
        events = list(stream)
        final = stream.get_final_message()
    assert [(b.type, b.id, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("tool_use", "toolu_a", {"city": "Oslo", "days": [1, 2, 3]}), ("tool_use", "toolu_b", {})]
    assert final.stop_reason == "tool_use"
    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]  # type: ignore[union-attr]
    assert len(partials) > 3  # the input arrives in pieces


def test_stream_wire_format_has_event_and_data_lines(fake: FakeAnthropic) -> None:
    fake.add_reply("hi", thinking="hmm")
    with httpx.stream("POST", f"{fake.base_url}/v1/messages",
                      json={"model": "m", "max_tokens": 5, "messages": USER, "stream": True},
                      headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as reply:
        assert reply.headers["content-type"] == "text/event-stream"
        lines = [line for line in reply.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert names == ["message_start", "ping",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    datas = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert [d["type"] for d in datas] == names  # every event's data names its own type
    assert datas[3]["delta"] == {"type": "thinking_delta", "thinking": "hmm"}
    assert datas[4]["delta"]["type"] == "signature_delta"


def test_thinking_blocks_parse(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.add_reply("The answer.", thinking="Let me think")
    kinds = [b.type for b in client.messages.create(model="m", max_tokens=50, messages=USER).content]  # type: ignore[arg-type]
    assert kinds == ["thinking", "text"]


@pytest.mark.parametrize(("status", "error_class", "kind"), [
    (529, anthropic.APIStatusError, "overloaded_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (400, anthropic.BadRequestError, "invalid_request_error"),
])
def test_injected_errors_in_anthropics_shape(client: anthropic.Anthropic, fake: FakeAnthropic,
                                             status: int, error_class: type[Exception], kind: str) -> None:
    fake.add_error(status, "something specific", retry_after=3)
    with pytest.raises(error_class) as caught:
        client.messages.create(model="m", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError) and error.status_code == status
    assert error.body == {"type": "error", "error": {"type": kind, "message": "something specific"}}
    assert error.response.headers["retry-after"] == "3" and error.request_id


def test_a_mid_stream_error_event(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.add_stream_error(after=4, message="Overloaded right now")
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model="m", max_tokens=50, messages=USER) as stream:  # type: ignore[arg-type]
            for event in stream:
                seen.append(event.type)
    assert "Overloaded right now" in str(caught.value)
    assert seen[0] == "message_start" and "message_stop" not in seen


def test_conversations_are_checked_like_the_real_api() -> None:
    def check(messages: list[dict[str, object]]) -> str | None:
        return check_conversation({"model": "m", "max_tokens": 5, "messages": messages})

    use = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}
    assert check([USER[0], use, result]) is None
    assert "alternate" in (check([USER[0], USER[0]]) or "")
    assert "without `tool_result`" in (check([USER[0], use, USER[0]]) or "")
    assert "unexpected `tool_use_id`" in (check([USER[0], {"role": "assistant", "content": "x"}, result]) or "")
    assert "'user' or 'assistant'" in (check([{"role": "system", "content": "x"}]) or "")
    assert "tool_result" in (check([USER[0], use]) or "")


def test_sampling_parameters_are_refused_from_version_2026_10_21(fake: FakeAnthropic) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": USER, "temperature": 1.0}
    def post(version: str) -> httpx.Response:
        return httpx.post(f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": version})
    refused = post("2026-10-21")
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "temperature: Extra inputs are not permitted"
    assert post("2023-06-01").status_code == 200


def test_a_bad_conversation_is_a_400_the_sdk_raises(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="alternate"):
        client.messages.create(model="m", max_tokens=5, messages=USER + USER)  # type: ignore[arg-type]
    assert fake.replies == type(fake.replies)()  # nothing consumed; the default reply untouched


def test_answers_render_both_ways_without_http() -> None:
    answer = AnthropicAnswer(AnthropicReply("a b", tool_uses=[{"name": "f", "input": {"x": 1}, "id": "t"}]),
                             {"model": "m", "messages": USER})
    message = answer.message("msg_1")
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"] and message["stop_reason"] == "tool_use"
    assert answer.events("msg_1")[0].startswith(b"event: message_start\ndata: ")


def test_a_client_timeout_is_seen_as_a_cancellation(fake: FakeAnthropic) -> None:
    fake.add_reply("never", delay=float("inf"))
    impatient = anthropic.Anthropic(base_url=fake.base_url, api_key="x", max_retries=0, timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        impatient.messages.create(model="m", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert fake.wait_cancelled(5) and fake.cancelled == 1


def test_a_hanging_stream_is_cancelled_when_the_client_leaves(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.add_reply("a b c d e", hang_after=4)
    stream = client.messages.create(model="m", max_tokens=50, messages=USER, stream=True)  # type: ignore[arg-type]
    events = iter(stream)
    got = [next(events).type for _ in range(3)]  # the SDK skips the ping
    assert got == ["message_start", "content_block_start", "content_block_delta"]
    assert fake.cancelled == 0
    stream.close()
    assert fake.wait_cancelled(5) and fake.cancelled == 1


def test_paced_stream_arrives_whole(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.add_reply("a b c", chunk_delay=0.01)
    with client.messages.stream(model="m", max_tokens=50, messages=USER) as stream:  # type: ignore[arg-type]
        assert "".join(stream.text_stream) == "a b c"


def test_keep_alive_reuses_one_connection(fake: FakeAnthropic) -> None:
    already_open = fake.open_connections
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=fake.base_url, headers=headers) as http:
        for _ in range(3):
            assert http.post("/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER}).status_code == 200
            with http.stream("POST", "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER,
                                                           "stream": True}) as reply:
                assert list(reply.iter_lines())[-3:] == ["event: message_stop", 'data: {"type":"message_stop"}', ""]
        assert fake.connections_opened == 1
    deadline = time.monotonic() + 5
    while fake.open_connections > already_open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.open_connections <= already_open and fake.cancelled == 0


def test_in_process_on_the_current_loop_with_the_async_sdk() -> None:
    async def body() -> None:
        async with FakeAnthropic(api_key="k") as fake:
            client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k", max_retries=0)
            fake.add_reply("async hello", delay=0.01)
            message = await client.messages.create(model="m", max_tokens=5, messages=USER)  # type: ignore[arg-type]
            assert message.content[0].text == "async hello"  # type: ignore[union-attr]
            async with client.messages.stream(model="m", max_tokens=5, messages=USER) as stream:  # type: ignore[arg-type]
                assert "".join([t async for t in stream.text_stream]) == "hello there world"
            await client.close()
    asyncio.run(body())


def test_runs_as_a_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "robutler_kernel.testing.fake_anthropic", "--port", "0", "--reply", "pong"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line + (process.stderr.read() if process.stderr else "")
        client = anthropic.Anthropic(base_url=line.split()[-1], api_key="x", max_retries=0)
        assert client.messages.create(model="m", max_tokens=5, messages=USER).content[0].text == "pong"  # type: ignore[arg-type, union-attr]
    finally:
        process.terminate()
        process.wait(5)
    assert process.stderr is not None and "Warning" not in process.stderr.read()

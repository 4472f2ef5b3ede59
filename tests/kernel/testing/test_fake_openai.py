"""FakeOpenAI, driven by the official ``openai`` client over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import openai
import pytest

from robutler_kernel.testing import FakeOpenAI, FakeReply
from robutler_kernel.testing.fake_openai import embed_text

USER = [{"role": "user", "content": "hello there world"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=5) as sdk:
        yield sdk


def test_base_url_and_port() -> None:
    with FakeOpenAI() as fake:
        assert fake.port > 0 and fake.base_url == f"http://127.0.0.1:{fake.port}/v1"


def test_default_reply_echoes_with_word_count_usage(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-x", messages=USER)
    assert completion.choices[0].message.content == "hello there world"
    assert completion.choices[0].finish_reason == "stop" and completion.model == "gpt-x"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (3, 3, 6)


def test_records_every_request(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    client.chat.completions.create(model="gpt-x", messages=USER, temperature=0.3, tools=[
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
    request = fake.last_request
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json["temperature"] == 0.3 and request.json["tools"][0]["function"]["name"] == "f"
    assert json.loads(request.body) == request.json


def test_scripted_replies_in_order_then_the_default(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("first", times=2)
    fake.push(FakeReply(content="second", finish_reason="length", usage={"prompt_tokens": 9, "completion_tokens": 1}))
    answers = [client.chat.completions.create(model="m", messages=USER) for _ in range(4)]
    assert [a.choices[0].message.content for a in answers] == ["first", "first", "second", "hello there world"]
    assert answers[2].choices[0].finish_reason == "length" and answers[2].usage.total_tokens == 10  # type: ignore[union-attr]


def test_tool_calls(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}, "id": "call_1"}, {"name": "now", "arguments": "{}"}])
    choice = client.chat.completions.create(model="m", messages=USER).choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    first, second = choice.message.tool_calls or []
    assert (first.id, first.function.name, json.loads(first.function.arguments)) == ("call_1", "lookup", {"q": "x"})
    assert second.id.startswith("call_") and second.function.name == "now"


def test_stream_with_usage(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("one two three", usage={"prompt_tokens": 4, "completion_tokens": 3})
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_and_explicit_chunks(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("ignored", chunks=["a", "bc", "d"])
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == ["a", "bc", "d"]
    assert all(c.usage is None for c in chunks)


def test_stream_tool_call_deltas(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply(tool_calls=[{"name": "lookup", "arguments": {"q": "a b"}, "id": "call_z"}])
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert (deltas[0].index, deltas[0].id, deltas[0].function.name) == (0, "call_z", "lookup")  # type: ignore[union-attr]
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"q": "a b"}  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_injected_error_with_retry_after(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_error(429, "slow down", type="requests", code="rate_limit_exceeded", retry_after=3)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=USER)
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body == {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}


def test_errors_are_consumed_by_embeddings_too(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_error(500, "down")
    with pytest.raises(openai.InternalServerError, match="down"):
        client.embeddings.create(model="e", input="x")


def test_embeddings_are_deterministic_floats_or_base64(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    floats = client.embeddings.create(model="e", input=["a", "b"], encoding_format="float")
    assert [d.embedding for d in floats.data] == [pytest.approx(embed_text("a")), pytest.approx(embed_text("b"))]
    assert abs(sum(x * x for x in floats.data[0].embedding) - 1) < 1e-6
    sized = client.embeddings.create(model="e", input="a", dimensions=3, encoding_format="float")
    assert len(sized.data[0].embedding) == 3
    as_base64 = client.embeddings.create(model="e", input="a", encoding_format="base64")
    wire = as_base64.data[0].embedding  # asked for explicitly, the SDK leaves it encoded
    assert struct.unpack("<8f", base64.b64decode(wire)) == pytest.approx(embed_text("a"), abs=1e-6)  # type: ignore[arg-type]


def test_models_and_path_prefix_tolerance(fake: FakeOpenAI) -> None:
    fake.models.append("other-model")
    root = openai.OpenAI(base_url=fake.base_url.removesuffix("/v1"), api_key="x", max_retries=0)
    assert [m.id for m in root.models.list()] == ["fake-model", "other-model"]
    assert root.chat.completions.create(model="m", messages=USER).choices[0].message.content == "hello there world"
    assert fake.last_request.path == "/chat/completions"
    fake.models.remove("other-model")


def test_unknown_route_and_bad_json() -> None:
    import httpx

    with FakeOpenAI() as fake:
        assert httpx.get(f"{fake.base_url}/nothing").status_code == 404
        bad = httpx.post(f"{fake.base_url}/chat/completions", content=b"{oops")
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_delay_before_the_first_byte(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("late", delay=0.2)
    started = time.perf_counter()
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "late"
    assert time.perf_counter() - started >= 0.2


def test_delay_between_chunks(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("a b c d", chunk_delay=0.05)
    started = time.perf_counter()
    stamps = [time.perf_counter() - started for _ in client.chat.completions.create(model="m", messages=USER, stream=True)]
    assert len(stamps) == 6  # role, a, b, c, d, finish
    # The role at once, then a chunk each 0.05 s: chunk i is never read before i delays after
    # the request (a late reader only makes chunks later).
    early = [(i, round(stamp, 3)) for i, stamp in enumerate(stamps) if stamp < i * 0.05 - 0.001]
    assert not early, early


def test_paced_streams_share_one_timer_and_keep_their_own_pace(fake: FakeOpenAI) -> None:
    """Many paced streams at once: each gets every event, a chunk_delay apart (never early),
    on its own connection; a complete stream is not counted as cancelled."""
    fake.default_reply = FakeReply(chunk_delay=0.05)
    stream_body = json.dumps({"model": "m", "stream": True, "messages": USER}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(stream_body), stream_body))

    async def one() -> tuple[float, list[float]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        sent = time.perf_counter()
        writer.write(request)
        stamps: list[float] = []  # when each SSE event (ending in a blank line) was read
        data = b""
        while chunk := await reader.read(65536):
            data += chunk
            stamps += [time.perf_counter()] * (data.count(b"\n\n") - len(stamps))
        writer.close()
        assert data.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
        return sent, stamps

    async def many() -> list[tuple[float, list[float]]]:
        return await asyncio.gather(*(one() for _ in range(20)))

    for sent, stamps in asyncio.run(many()):
        # The role event at once, then an event each chunk_delay: event i is never read
        # before i delays after the request was sent. (Reads are not events: a busy client
        # may read two events at once, which makes them late, never early.)
        assert len(stamps) >= 5, stamps
        early = [(i, round(stamp - sent, 3)) for i, stamp in enumerate(stamps) if stamp - sent < i * 0.05 - 0.01]
        assert not early, early
    assert fake.cancelled == 0


def test_a_client_timeout_is_seen_as_a_cancellation(fake: FakeOpenAI) -> None:
    fake.add_reply("never", delay=float("inf"))
    impatient = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="m", messages=USER)
    assert fake.wait_cancelled(5) and fake.cancelled == 1


def test_a_hanging_stream_is_cancelled_when_the_client_leaves(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("a b c d e", hang_after=3)
    stream = client.chat.completions.create(model="m", messages=USER, stream=True)
    got = [next(stream) for _ in range(3)]
    assert [c.choices[0].delta.content for c in got] == ["", "a ", "b "]
    assert fake.cancelled == 0
    stream.close()
    assert fake.wait_cancelled(5) and fake.cancelled == 1


def test_keep_alive_reuses_one_connection(fake: FakeOpenAI) -> None:
    import httpx

    # (The openai SDK drops a stream's connection after ``[DONE]`` without reading the
    # chunked terminator, so streams are read to the end with httpx here.)
    already_open = fake.open_connections  # other tests' clients may still be connected
    client = httpx.Client(base_url=fake.base_url)
    for _ in range(5):
        assert client.post("/chat/completions", json={"model": "m", "messages": USER}).status_code == 200
        with client.stream("POST", "/chat/completions", json={"model": "m", "messages": USER, "stream": True}) as reply:
            assert list(reply.iter_lines())[-2:] == ["data: [DONE]", ""]
    assert fake.connections_opened == 1 and fake.open_connections == already_open + 1
    client.close()
    deadline = time.monotonic() + 5
    while fake.open_connections > already_open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.open_connections == already_open and fake.connections_closed >= 1 and fake.cancelled == 0


def raw_exchange(fake: FakeOpenAI, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", fake.port)) as sock:
        sock.sendall(payload)
        sock.settimeout(5)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_pipelined_requests_and_connection_close(fake: FakeOpenAI) -> None:
    body = json.dumps({"model": "m", "messages": USER}).encode()
    one = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    last = one.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    data = raw_exchange(fake, one + one + last)  # the server closes after the third answer
    assert data.count(b"HTTP/1.1 200 OK") == 3 and data.count(b"hello there world") == 3
    assert data.endswith(b"}") and b"connection: close" in data


def test_in_process_on_the_current_loop() -> None:
    async def body() -> None:
        async with FakeOpenAI() as fake:
            fake.add_reply("async hello", delay=0.01)
            client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
            reply = await client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
            assert reply.choices[0].message.content == "async hello"
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
            assert len([c async for c in stream]) == 5  # role, 3 words, finish
            fake.add_reply("slow", hang_after=1)
            stream = await client.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
            await anext(aiter(stream))
            await stream.close()
            assert await fake.wait_cancelled_async(5)
            await client.close()
    asyncio.run(body())


def test_runs_as_a_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "robutler_kernel.testing.fake_openai", "--port", "0", "--reply", "pong"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line + (process.stderr.read() if process.stderr else "")
        base_url = line.split()[-1]
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
        assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "pong"
    finally:
        process.terminate()
        process.wait(5)
    assert process.stderr is not None and "Warning" not in process.stderr.read()

"""Streaming over a real socket (Hypercorn): the official client, and a client that leaves."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, make_kernel
from robutler_specs import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    LLMCall,
    RequestContext,
    Skill,
    hookimpl,
)


class Endless(Skill):
    """A provider that streams forever and records being closed."""

    name = "endless"
    provider = "endless"
    closed = threading.Event()
    finalized: list[str] = []

    @hookimpl
    def llm_stream(self, call: LLMCall) -> AsyncIterator[ChatCompletionChunk] | None:
        async def chunks() -> AsyncIterator[ChatCompletionChunk]:
            try:
                n = 0
                while True:
                    n += 1
                    yield ChatCompletionChunk(id="u", created=0, model="m", choices=[ChunkChoice(0, Delta(content=f"tok{n} "))])
                    await asyncio.sleep(0.01)
            finally:
                Endless.closed.set()

        return chunks()

    @hookimpl
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        Endless.finalized.append(type(error).__name__ if error else "ok")


def test_official_client_streams_over_real_http() -> None:
    kernel = make_kernel({"helper": {"model": "scripted/echo"}}, plugins=[scripted])
    with LiveServer(kernel) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        stream = client.chat.completions.create(
            model="helper",
            messages=[{"role": "user", "content": "stream me please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me please"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # include_usage chunk
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_client_disconnect_mid_stream_cancels_upstream_and_finalizes() -> None:
    Endless.closed.clear()
    Endless.finalized.clear()
    kernel = make_kernel({"forever": {"model": "endless/x", "skills": {"endless": None}}}, plugins=[scripted, Endless])
    with LiveServer(kernel) as server:
        host, port = server.url.removeprefix("http://").split(":")
        body = b'{"stream": true, "messages": [{"role": "user", "content": "go"}]}'
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /forever/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            received = b""
            while received.count(b"data: ") < 5:
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200") and b"tok1" in received
        # The socket is closed: the server must stop the upstream stream and finalize.
        assert Endless.closed.wait(5), "the upstream stream was not closed after the client left"
        deadline = time.monotonic() + 5
        while not Endless.finalized and time.monotonic() < deadline:
            time.sleep(0.01)
    assert Endless.finalized == ["CancelledError"]


def test_error_mid_stream_is_an_error_event_then_done() -> None:
    class Flaky(Skill):
        name = "flaky"
        provider = "flaky"

        @hookimpl
        def llm_stream(self) -> Any:
            async def chunks() -> AsyncIterator[ChatCompletionChunk]:
                yield ChatCompletionChunk(id="u", created=0, model="m", choices=[ChunkChoice(0, Delta(content="partial "))])
                raise ConnectionResetError("upstream hung up")

            return chunks()

    kernel = make_kernel({"flaky": {"model": "flaky/x", "skills": {"flaky": None}}}, plugins=[scripted, Flaky])
    with LiveServer(kernel) as server:
        client = openai.OpenAI(base_url=f"{server.url}/flaky", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "go"}], stream=True)
        received = []
        try:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
            raise AssertionError("the stream should have ended with an error")
        except openai.APIError as exc:
            assert "upstream hung up" in str(exc)
    assert "partial " in received


def test_a_stream_cut_short_is_still_metered() -> None:
    Endless.closed.clear()
    records: list[Any] = []

    class Meter(Skill):
        name = "meter"

        @hookimpl
        def finalize_connection(self, ctx: RequestContext) -> None:
            records.extend(ctx.usage)

    kernel = make_kernel({"forever": {"model": "endless/x", "skills": {"endless": None, "meter": None}}}, plugins=[scripted, Endless, Meter])

    async def main() -> None:
        await kernel.startup()
        chunks = kernel.agent("forever").run_streaming([{"role": "user", "content": "go"}])
        for _ in range(4):
            await chunks.__anext__()
        await chunks.aclose()

    asyncio.run(main())
    (record,) = records
    assert record.kind == "llm" and record.ok is False and record.estimated
    assert record.completion_tokens > 0 and "ended early" in (record.error or "")


def test_serve_process_helper_starts_and_stops_a_real_server(tmp_path: Any) -> None:
    import httpx

    from robutler_kernel.testing import ServeProcess

    config = tmp_path / "robutler.yaml"
    config.write_text("server: {metrics_port: null}\nagents:\n  echo: {model: scripted/echo}\n")
    with ServeProcess(config, plugins=["scripted"]) as server:
        reply = httpx.post(f"{server.url}/echo/chat/completions", json={"messages": [{"role": "user", "content": "hey"}]})
        assert reply.json()["choices"][0]["message"]["content"] == "You said: hey"
    assert server.process.returncode == 0


def test_request_timeout_covers_streams() -> None:
    kernel = make_kernel(
        {"slow": {"model": "scripted/echo", "skills": {"scripted": {"chunk_delay": 0.2}}}},
        plugins=[scripted],
        server={"metrics_port": None, "request_timeout": 1.0},  # the 9 words take 1.8 s
    )
    with LiveServer(kernel) as server:
        client = openai.OpenAI(base_url=f"{server.url}/slow", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "one two three four five six seven"}], stream=True
        )
        received = []
        try:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
            raise AssertionError("the stream should have been cut by request_timeout")
        except openai.APIError as exc:
            assert "server.request_timeout" in str(exc)
    assert 0 < len("".join(received).split()) < 9


@pytest.mark.parametrize("leaves_after", [0.01, 0.3])  # before and after the kernel starts watching
def test_client_leaving_a_json_request_cancels_the_work(leaves_after: float) -> None:
    cancelled = threading.Event()
    finalized: list[str] = []

    class Slow(Skill):
        name = "slow"
        provider = "slow"

        @hookimpl
        async def llm_complete(self) -> Any:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        @hookimpl
        def finalize_connection(self, error: BaseException | None) -> None:
            finalized.append(type(error).__name__ if error else "ok")

    kernel = make_kernel({"slow": {"model": "slow/x", "skills": {"slow": None}}}, plugins=[scripted, Slow])
    with LiveServer(kernel) as server:
        host, port = server.url.removeprefix("http://").split(":")
        body = b'{"messages": [{"role": "user", "content": "go"}]}'
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /slow/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            time.sleep(leaves_after)
        assert cancelled.wait(5), "the provider call was not cancelled when the client left"
        deadline = time.monotonic() + 5
        while not finalized and time.monotonic() < deadline:
            time.sleep(0.01)
    assert finalized == ["CancelledError"]

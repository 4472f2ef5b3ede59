"""No hidden limits: server.max_concurrent_requests (an immediate 503 over a real socket),
server.backlog (reaches Hypercorn and the listening socket), the open files limit."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import robutler_kernel.serve as serve_module
import robutler_plugin_scripted as scripted
from robutler_kernel.serve import DEFAULT_BACKLOG, hypercorn_config, raise_open_files_limit
from robutler_kernel.testing import LiveServer, make_kernel
from robutler_specs import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    LLMCall,
    LLMResult,
    Message,
    Skill,
    Usage,
    hookimpl,
)

LIMIT = 4


class Gated(Skill):
    """A provider whose answers wait for the test to open the gate."""

    name = "gated"
    provider = "gated"
    gate = threading.Event()
    inside = 0
    lock = threading.Lock()

    @hookimpl
    async def llm_complete(self, call: LLMCall) -> LLMResult:
        with Gated.lock:
            Gated.inside += 1
        try:
            while not Gated.gate.is_set():
                await asyncio.sleep(0.005)
        finally:
            with Gated.lock:
                Gated.inside -= 1
        return LLMResult(message=Message(role="assistant", content="done"),
                         usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))

    @hookimpl
    def llm_stream(self, call: LLMCall) -> AsyncIterator[ChatCompletionChunk]:
        async def chunks() -> AsyncIterator[ChatCompletionChunk]:
            yield ChatCompletionChunk(id="x", created=0, model="m", choices=[ChunkChoice(0, Delta(content="first "))])
            while not Gated.gate.is_set():
                await asyncio.sleep(0.005)
            yield ChatCompletionChunk(id="x", created=0, model="m", choices=[ChunkChoice(0, Delta(content="last"))])

        return chunks()


def _kernel(**server: Any) -> Any:
    return make_kernel({"slow": {"model": "gated/x"}}, plugins=[Gated],
                       server={"metrics_port": None, "max_concurrent_requests": LIMIT, **server})


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_requests_beyond_the_limit_get_an_immediate_503_over_a_real_socket() -> None:
    Gated.gate.clear()
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    with LiveServer(_kernel()) as server:
        async def main() -> None:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
                held = [asyncio.create_task(client.post("/slow/chat/completions", json=chat)) for _ in range(LIMIT)]
                await asyncio.to_thread(_wait_for, lambda: Gated.inside == LIMIT)
                # 20 more at once, on their own connections: every one refused at once.
                started = time.monotonic()
                extra = await asyncio.gather(*(client.post("/slow/chat/completions", json=chat) for _ in range(20)),
                                             client.post("/v1/chat/completions", json={**chat, "model": "slow", "stream": True}),
                                             client.get("/v1/models"))
                elapsed = time.monotonic() - started
                assert elapsed < 2.0, f"refusals took {elapsed:.2f}s"
                for response in extra:
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"] == "1"
                    assert response.headers["x-content-type-options"] == "nosniff"
                    error = response.json()["error"]
                    assert error["code"] == "server_overloaded" and error["type"] == "server_error"
                    assert f"limit of {LIMIT} concurrent requests (server.max_concurrent_requests)" in error["message"]
                assert Gated.inside == LIMIT  # nothing refused reached the agent
                # Health routes are never refused: a busy process is alive and ready.
                for path in ("/health", "/ready", "/live", "/"):
                    assert (await client.get(path)).status_code == 200, path
                Gated.gate.set()
                for response in await asyncio.gather(*held):
                    assert response.status_code == 200
                # Capacity is back once the held requests ended.
                again = await asyncio.gather(*(client.post("/slow/chat/completions", json=chat) for _ in range(LIMIT)))
                assert [r.status_code for r in again] == [200] * LIMIT

        asyncio.run(main())


def test_a_stream_holds_its_place_until_its_last_byte() -> None:
    Gated.gate.clear()
    with LiveServer(_kernel(max_concurrent_requests=1)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
            with client.stream("POST", "/slow/chat/completions", json=body) as stream:
                assert stream.status_code == 200
                # The first stream is open (its first chunk sent): a second request is refused.
                with httpx.Client(base_url=server.url, timeout=10) as other:
                    assert other.post("/slow/chat/completions", json=body).status_code == 503
                Gated.gate.set()
                assert b"[DONE]" in stream.read()
            assert client.post("/slow/chat/completions", json=body).status_code == 200


def test_no_limit_when_null() -> None:
    kernel = make_kernel(plugins=[scripted], server={"metrics_port": None, "max_concurrent_requests": None})
    front = kernel.asgi_app().app
    assert front.limit == 0 and front.overloaded is None


def test_defaults() -> None:
    server = make_kernel(plugins=[scripted]).config.server
    assert server.max_concurrent_requests == 16384
    assert server.backlog == DEFAULT_BACKLOG == 4096


# -- the listen backlog ------------------------------------------------------------------------


def test_hypercorn_config_carries_the_backlog() -> None:
    assert hypercorn_config("127.0.0.1", 0).backlog == 4096
    assert hypercorn_config("127.0.0.1", 0, backlog=77).backlog == 77


def test_server_backlog_reaches_hypercorn_and_the_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = serve_module.hypercorn_config

    def spy(*args: Any, **kwargs: Any) -> Any:
        config = real(*args, **kwargs)
        seen.append(config.backlog)
        return config

    monkeypatch.setattr(serve_module, "hypercorn_config", spy)
    with LiveServer(make_kernel(plugins=[scripted], server={"metrics_port": None, "backlog": 77})) as server:
        assert seen == [77]
        ss = shutil.which("ss")
        if ss is not None:
            # For a listening socket, ss shows the backlog as Send-Q.
            port = server.url.rsplit(":", 1)[1]
            out = subprocess.run([ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
            assert out.split()[2] == "77", out


def test_open_files_limit_is_raised_towards_what_the_limits_need() -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        assert raise_open_files_limit(min(4096, hard)) == min(4096, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(4096, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

"""A plugin route acting for an agent runs that agent's conversation inside its own request
(``kernel.run_request`` / ``kernel.stream_request``) and may answer with a stream of
server-sent events: one lifecycle, ``on_connection`` and ``finalize_connection`` once each,
``finalize_connection`` seeing an error the handler answered in its own words."""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, kernel_client, make_kernel
from robutler_specs import (
    HttpRequest,
    HttpRoute,
    KernelAPI,
    Message,
    RequestContext,
    RequestError,
    Skill,
    hookimpl,
)

SEEN: list[tuple[str, Any]] = []


class Watch(Skill):
    """Notes the lifecycle of every request."""

    name = "watch"

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        SEEN.append(("open", ctx.request_id))

    @hookimpl
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        SEEN.append(("finalize", None if error is None else getattr(error, "message", repr(error))))
        ctx.response_headers["x-watched"] = "yes"


def plugin() -> Any:
    def robutler_routes(kernel: KernelAPI) -> list[HttpRoute]:
        async def ask(request: HttpRequest, ctx: RequestContext) -> Any:
            ctx.messages = [Message(role="user", content=request.json()["text"])]
            try:
                completion = await kernel.run_request(ctx)
            except RequestError as exc:
                return {"failed": exc.message}  # answered in the route's own shape
            return {"said": completion.choices[0].message.content, "tokens": completion.usage.total_tokens}

        async def stream(request: HttpRequest, ctx: RequestContext) -> Any:
            ctx.messages = [Message(role="user", content=request.json()["text"])]
            chunks = kernel.stream_request(ctx)

            async def events() -> Any:
                try:
                    async for chunk in chunks:
                        for choice in chunk.choices:
                            if choice.delta.content:
                                yield f"event: piece\ndata: {json.dumps(choice.delta.content)}\n\n".encode()
                except RequestError as exc:
                    yield f"event: failed\ndata: {json.dumps(exc.message)}\n\n".encode()
                yield b"event: end\ndata: {}\n\n"

            return events()

        async def outside(request: HttpRequest) -> Any:
            spec = await kernel.find_agent("bot")
            assert spec is not None
            try:
                await kernel.run_request(RequestContext(spec, []))
            except RuntimeError as exc:
                return {"refused": str(exc)}
            return {"refused": None}

        return [HttpRoute("/x/{agent}/ask", ask, methods=("POST",)),  # type: ignore[arg-type]
                HttpRoute("/x/{agent}/stream", stream, methods=("POST",)),  # type: ignore[arg-type]
                HttpRoute("/x/outside", outside)]

    module = types.ModuleType("conversing")
    module.robutler_routes = hookimpl(robutler_routes)  # type: ignore[attr-defined]
    module.robutler_skills = hookimpl(lambda: [Watch])  # type: ignore[attr-defined]
    return module


SCRIPTS = {"broken": [{"error": "upstream exploded"}], "slow": [{"content": "a b c d e f g h"}]}


def kernel(**server: Any) -> Any:
    skills = {"watch": {}, "scripted": {"scripts": SCRIPTS, "chunk_delay": 0.2 if server else 0.0}}
    return make_kernel(
        {"bot": {"model": "scripted/echo", "skills": skills},
         "broken": {"model": "scripted/broken", "retry": {"attempts": 1}, "skills": skills},
         "slow": {"model": "scripted/slow", "skills": skills}},
        plugins=[scripted, plugin()], server=server or None,
    )


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()


async def test_a_route_runs_the_agents_conversation_in_its_own_request() -> None:
    async with kernel_client(kernel()) as client:
        answer = await client.post("/x/bot/ask", json={"text": "hello"})
    assert answer.json() == {"said": "You said: hello", "tokens": answer.json()["tokens"]}
    assert answer.headers["x-watched"] == "yes"
    assert [kind for kind, _ in SEEN] == ["open", "finalize"]  # once: not a second request
    assert SEEN[1] == ("finalize", None)


async def test_an_error_the_route_answers_itself_still_reaches_finalize_connection() -> None:
    async with kernel_client(kernel()) as client:
        answer = await client.post("/x/broken/ask", json={"text": "hello"})
    assert answer.status_code == 200 and "upstream exploded" in answer.json()["failed"]
    assert SEEN[-1][0] == "finalize" and "upstream exploded" in SEEN[-1][1]


async def test_a_route_streams_server_sent_events_and_finalizes_after_the_last() -> None:
    async with kernel_client(kernel()) as client:
        ok = await client.post("/x/bot/stream", json={"text": "one two"})
        SEEN.append(("---", None))
        failed = await client.post("/x/broken/stream", json={"text": "x"})
    assert ok.headers["content-type"].startswith("text/event-stream")
    assert ok.headers["x-request-id"]
    pieces = [json.loads(line[6:]) for line in ok.text.splitlines() if line.startswith("data: \"")]
    assert "".join(pieces) == "You said: one two"
    assert ok.text.endswith("event: end\ndata: {}\n\n")  # no [DONE]: the route's own protocol
    assert "event: failed" in failed.text and "upstream exploded" in failed.text
    assert [kind for kind, _ in SEEN] == ["open", "finalize", "---", "open", "finalize"]
    assert SEEN[1] == ("finalize", None) and "upstream exploded" in SEEN[-1][1]


async def test_run_request_outside_a_routes_handler_is_refused() -> None:
    async with kernel_client(kernel()) as client:
        answer = await client.get("/x/outside")
    assert "call them from its handler" in answer.json()["refused"]


def test_a_stream_is_cut_by_request_timeout_and_finalized() -> None:
    import httpx

    with LiveServer(kernel(request_timeout=1.0)) as live:  # the 8 pieces take 1.6 s
        with httpx.Client() as client:
            answer = client.post(f"{live.url}/x/slow/stream", json={"text": "x"}, timeout=10)
    assert answer.status_code == 200 and "event: piece" in answer.text
    assert "event: end" not in answer.text and "request_timeout" in answer.text
    assert SEEN[-1][0] == "finalize" and "request_timeout" in SEEN[-1][1]

"""One lifecycle behind every door: ``on_connection`` first, ``finalize_connection`` exactly
once, whatever way a request came in and however it ended.

Doors (each over a real socket, Hypercorn): ``POST /{agent}/chat/completions`` and ``POST
/v1/chat/completions``, each as JSON and as an SSE stream; ``POST /v1/completions``; a
skill's ``@http`` endpoint (``/{agent}/work``); a plugin route acting for an agent
(``/plugin/{agent}/work``, from ``robutler_routes``).

Paths, each on every door it applies to: success; a ``RequestError`` from ``on_connection``
(401) and from later (403); a crash (``RuntimeError``: a 500 that names the plugin, no
traceback) in ``on_connection`` and later; ``server.request_timeout`` (504); the client
leaving before the answer; a ``finalize_connection`` that outlasts the deadline, and one the
client leaves during (neither is interrupted once begun).

"Later" is the LLM stage on a chat door (``before_llm_call``) and the handler on the
``@http`` and plugin-route doors, which have no hooks between ``on_connection`` and
``finalize_connection``. The slow work is the scripted model calling a slow tool on a chat
door, and a slow handler on the others.

What does not apply, and why:

* after the first chunk (a refusal, a crash, the deadline, the client leaving): streams
  only, since a JSON answer is sent whole;
* a plugin route without ``{agent}``: it acts for no agent, so it has no lifecycle (no
  hooks run; only the body limit and ``request_timeout`` hold);
* a request refused before its agent is known (413 body, malformed JSON, unknown agent;
  ``/v1/completions`` names its agent inside the body): no turn exists yet, so no hook
  runs (the 413 tests below show it).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, make_kernel
from robutler_specs import (
    ChatCompletionChunk,
    Forbidden,
    HttpRequest,
    HttpRoute,
    RequestContext,
    Skill,
    Unauthorized,
    hookimpl,
    http,
    tool,
)

FAULT = "x-fault"
MARKER = "x-marker"
# server.request_timeout of the tight server: ten times what its ordinary requests take
# (a few ms, a streamed "hi" at 0.02 s a chunk and a paid one's ledger), so that only the
# paths meant to be late pass it, on a busy machine too.
TIGHT = 0.6
SLOW_FINALIZE = TIGHT + 0.3
POLL = 5.0

NAP = "call nap seconds=30"
DRIP = " ".join(f"w{i}" for i in range(200))  # 200 chunks, 0.02 s apart


async def act(ctx: RequestContext, request: HttpRequest) -> dict[str, Any]:
    """The work behind the ``@http`` endpoint and the plugin route."""
    fault = request.headers.get(FAULT)
    if fault == "late-403":
        raise Forbidden("not for you (test)")
    if fault == "late-crash":
        raise RuntimeError("the handler exploded (test)")
    if fault == "slow":
        await asyncio.sleep(30)
    return {"agent": ctx.agent.name, "request_id": ctx.request_id}


class Fault(Skill):
    """Fails, crashes or dawdles where the ``X-Fault`` header says; serves ``@http work``."""

    name = "fault"
    priority = 50
    #: Markers of requests whose slow ``finalize_connection`` ran to its end.
    finalized: list[str] = []

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        fault = ctx.headers.get(FAULT)
        if fault == "connect-401":
            raise Unauthorized("who are you? (test)")
        if fault == "connect-crash":
            raise RuntimeError("on_connection exploded (test)")

    @hookimpl
    def before_llm_call(self, ctx: RequestContext) -> None:
        fault = ctx.headers.get(FAULT)
        if fault == "late-403":
            raise Forbidden("not for you (test)")
        if fault == "late-crash":
            raise RuntimeError("before_llm_call exploded (test)")

    @hookimpl
    def on_chunk(self, ctx: RequestContext, chunk: ChatCompletionChunk) -> None:
        fault = ctx.headers.get(FAULT)
        if fault in ("chunk-403", "chunk-crash") and any("said" in (c.delta.content or "") for c in chunk.choices):
            if fault == "chunk-403":
                raise Forbidden("not the rest (test)")
            raise RuntimeError("on_chunk exploded (test)")

    @hookimpl
    async def finalize_connection(self, ctx: RequestContext) -> None:
        if ctx.headers.get(FAULT) == "slow-finalize":
            await asyncio.sleep(SLOW_FINALIZE)
            Fault.finalized.append(ctx.headers[MARKER])

    @tool
    async def nap(self, seconds: float) -> str:
        """Sleep a while.

        Args:
            seconds: how long
        """
        await asyncio.sleep(seconds)
        return "rested"

    @http("work", methods=["POST"])
    async def work(self, ctx: RequestContext, request: HttpRequest) -> dict[str, Any]:
        return await act(ctx, request)


async def _route(request: HttpRequest, ctx: RequestContext) -> dict[str, Any]:
    return await act(ctx, request)


ROUTES = types.ModuleType("lifecycle_routes")
ROUTES.robutler_routes = hookimpl(lambda: [HttpRoute("/plugin/{agent}/work", _route, methods=("POST",))])  # type: ignore[attr-defined]

class Recorder(Skill):
    """Records each request's ``on_connection`` and ``finalize_connection`` (first of all
    skills): ``(marker, request id, hook, type of the error finalize_connection saw)``."""

    name = "recorder"
    priority = 0
    calls: list[tuple[str, str, str, str | None]] = []

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        Recorder.calls.append((ctx.headers.get(MARKER, ""), ctx.request_id, "on_connection", None))

    @hookimpl
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        failure = None if error is None else type(error).__name__
        Recorder.calls.append((ctx.headers.get(MARKER, ""), ctx.request_id, "finalize_connection", failure))


AGENTS = {"bot": {"model": "scripted/echo", "skills": {"recorder": None, "fault": None, "scripted": {"chunk_delay": 0.02}}}}


def _serve(**server: Any) -> Iterator[str]:
    kernel = make_kernel(AGENTS, plugins=[scripted, Recorder, Fault, ROUTES], server={"metrics_port": None, **server})
    with LiveServer(kernel) as live:
        yield live.url


@pytest.fixture(scope="module")
def normal() -> Iterator[str]:
    yield from _serve()


@pytest.fixture(scope="module")
def tight() -> Iterator[str]:
    yield from _serve(request_timeout=TIGHT)


# -- doors -----------------------------------------------------------------------------


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


DOORS: dict[str, Callable[[str], tuple[str, dict[str, Any]]]] = {
    "chat": lambda text: ("/bot/chat/completions", {"messages": _msgs(text)}),
    "chat-stream": lambda text: ("/bot/chat/completions", {"messages": _msgs(text), "stream": True}),
    "v1-chat": lambda text: ("/v1/chat/completions", {"model": "bot", "messages": _msgs(text)}),
    "v1-chat-stream": lambda text: ("/v1/chat/completions", {"model": "bot", "messages": _msgs(text), "stream": True}),
    "completions": lambda text: ("/v1/completions", {"model": "bot", "prompt": text}),
    "http": lambda text: ("/bot/work", {"text": text}),
    "route": lambda text: ("/plugin/bot/work", {"text": text}),
}
STREAMS = ("chat-stream", "v1-chat-stream")


def cases(paths: tuple[str, ...], doors: tuple[str, ...] = tuple(DOORS)) -> list[Any]:
    return [pytest.param(door, path, id=f"{door}-{path}") for path in paths for door in doors]


# -- what the server saw ---------------------------------------------------------------


def lifecycle(marker: str) -> list[tuple[str, str | None]]:
    """(hook, error type) of the request's ``on_connection`` and ``finalize_connection``."""
    return [(hook, error) for mark, _, hook, error in list(Recorder.calls) if mark == marker]


def request_id_of(marker: str) -> str:
    """The id of the request marked ``marker``, as its hooks saw it."""
    [request_id] = [rid for mark, rid, hook, _ in list(Recorder.calls) if mark == marker and hook == "on_connection"]
    return request_id


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {POLL:g} s: {what}")
        time.sleep(0.01)


def assert_ran_once(marker: str, error: str | None, *, wait: bool = False) -> None:
    """``on_connection`` then exactly one ``finalize_connection``, which saw ``error``."""
    if wait:
        wait_for(lambda: any(h == "finalize_connection" for h, _ in lifecycle(marker)), "finalize_connection ran")
        time.sleep(0.05)  # room for a second call, were there one
    assert lifecycle(marker) == [("on_connection", None), ("finalize_connection", error)]


# -- answered paths --------------------------------------------------------------------


ANSWERED = {
    # path: (server, X-Fault, text, status, finalize's error, words the error message has)
    "success": ("normal", None, "hi", 200, None, ()),
    "refused-on-connection": ("normal", "connect-401", "hi", 401, "Unauthorized", ("who are you",)),
    "refused-later": ("normal", "late-403", "hi", 403, "Forbidden", ("not for you",)),
    "crash-on-connection": ("normal", "connect-crash", "hi", 500, "HookFailed", ("plugin 'fault'", "on_connection")),
    "crash-later": ("normal", "late-crash", "hi", 500, "HookFailed", ("{later}",)),
    "timeout": ("tight", "slow", NAP, 504, "ProviderTimeout", ("server.request_timeout",)),
    "finalize-past-deadline": ("tight", "slow-finalize", "hi", 200, None, ()),
    # streams only: after the first chunk the status is sent; the error is the last event
    "refused-mid-stream": ("normal", "chunk-403", "hi", 200, "Forbidden", ("not the rest",)),
    "crash-mid-stream": ("normal", "chunk-crash", "hi", 200, "HookFailed", ("plugin 'fault'", "on_chunk")),
    "timeout-mid-stream": ("tight", None, DRIP, 200, "ProviderTimeout", ("server.request_timeout",)),
}
EVERY_DOOR = ("success", "refused-on-connection", "refused-later", "crash-on-connection", "crash-later", "timeout",
              "finalize-past-deadline")
#: Where a crash "later" happens, as the 500 names it.
LATER = {"http": "plugin 'fault' failed in its @http endpoint POST /work",
         "route": "plugin 'lifecycle_routes' failed in its route POST /plugin/{agent}/work"}
LATER_IN_CHAT = "plugin 'fault' failed in hook before_llm_call"
MID_STREAM = ("refused-mid-stream", "crash-mid-stream", "timeout-mid-stream")


def sse_events(text: str) -> list[Any]:
    lines = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert lines and lines[-1] == "[DONE]", text[-300:]
    return [json.loads(line) for line in lines[:-1]]


def ask(url: str, door: str, path: str, headers: dict[str, str] | None = None) -> tuple[httpx.Response, str, float]:
    """Send ``path``'s request through ``door``: the answer, the request's marker, seconds taken."""
    _, fault, text, *_ = ANSWERED[path]
    route, body = DOORS[door](text)
    marker = uuid.uuid4().hex
    sent = {**(headers or {}), MARKER: marker, **({FAULT: fault} if fault else {})}
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(route, json=body, headers=sent)
    return response, marker, time.monotonic() - started


@pytest.mark.parametrize(("door", "path"), cases(EVERY_DOOR) + cases(MID_STREAM, STREAMS))
def test_answered_paths_open_then_finalize_once(door: str, path: str, request: pytest.FixtureRequest) -> None:
    server, _, _, status, error, words = ANSWERED[path]
    words = tuple(w.replace("{later}", LATER.get(door, LATER_IN_CHAT)) for w in words)
    response, marker, took = ask(request.getfixturevalue(server), door, path)

    assert response.status_code == status, response.text
    assert response.headers["x-request-id"] == request_id_of(marker)
    if door in STREAMS and status == 200:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.text)
        failures = [e["error"] for e in events if "error" in e]
        if error is None:
            assert not failures and events[-1]["choices"][0]["finish_reason"] == "stop"
        else:
            [failure] = failures
            assert "error" in events[-1] and events[0]["choices"][0]["delta"]["role"] == "assistant"
            message = failure["message"]
            assert all(w in message for w in words), message
    elif status == 200:
        assert response.headers["content-type"] == "application/json"
        assert "error" not in response.json()
    else:
        assert response.headers["content-type"] == "application/json"
        message = response.json()["error"]["message"]
        assert all(w in message for w in words), message
        assert "Traceback" not in response.text and ".py\", line" not in response.text
    if path == "finalize-past-deadline":
        # It began in time, so it ran to its end although the deadline passed meanwhile.
        assert marker in Fault.finalized and took >= SLOW_FINALIZE
    if path.startswith("timeout"):
        assert took < TIGHT + 2
    assert_ran_once(marker, error)


# -- the client leaves -----------------------------------------------------------------


def send_raw(url: str, route: str, body: dict[str, Any], headers: dict[str, str]) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    raw = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock = socket.create_connection((host, int(port)), timeout=POLL)
    sock.sendall(
        f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
        f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw
    )
    return sock


LEAVING = {
    # path: (X-Fault, text, when to leave, what finalize_connection sees)
    "disconnect": ("slow", NAP, "working", "CancelledError"),
    "disconnect-in-finalize": ("slow-finalize", "hi", "finalizing", None),
    "disconnect-mid-stream": (None, DRIP, "first-chunk", "CancelledError"),
}


def leave(url: str, door: str, path: str, headers: dict[str, str] | None = None) -> str:
    """Send ``path``'s request through ``door`` over a raw socket and hang up when the path
    says; returns the request's marker once a slow ``finalize_connection`` has ended."""
    fault, text, when, _ = LEAVING[path]
    route, body = DOORS[door](text)
    marker = uuid.uuid4().hex
    sent = {**(headers or {}), MARKER: marker, **({FAULT: fault} if fault else {})}
    with send_raw(url, route, body, sent) as sock:
        if when == "first-chunk":
            received = b""
            deadline = time.monotonic() + POLL
            while b"data: {" not in received and time.monotonic() < deadline:
                received += sock.recv(65536)
            assert received.startswith(b"HTTP/1.1 200") and b"data: {" in received, received[:300]
        else:
            hook = "on_connection" if when == "working" else "finalize_connection"
            wait_for(lambda: any(h == hook for h, _ in lifecycle(marker)), f"{hook} began")
    if when == "finalizing":
        # Begun before the client left: it runs to its end all the same.
        wait_for(lambda: marker in Fault.finalized, "the slow finalize_connection ended")
    return marker


@pytest.mark.parametrize(
    ("door", "path"), cases(("disconnect", "disconnect-in-finalize")) + cases(("disconnect-mid-stream",), STREAMS)
)
def test_a_client_that_leaves_is_finalized_once(door: str, path: str, normal: str) -> None:
    marker = leave(normal, door, path)
    assert_ran_once(marker, LEAVING[path][3], wait=True)


# -- the body limit comes first ---------------------------------------------------------


class Gate(Skill):
    """Lets in only callers with a bearer token."""

    name = "gate"

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        if not ctx.headers.get("authorization", "").startswith("Bearer "):
            raise Unauthorized("send a bearer token")


BIG = 5 * 1024 * 1024
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def gated() -> Iterator[str]:
    kernel = make_kernel({"locked": {"model": "scripted/echo", "skills": {"recorder": None, "gate": None}}},
                         plugins=[scripted, Recorder, Gate], server={"metrics_port": None, "max_body_bytes": LIMIT})
    with LiveServer(kernel) as live:
        yield live.url


def _big_body() -> Iterator[bytes]:
    yield b'{"model": "locked", "prompt": "'
    piece = b"x" * 65536
    for _ in range(BIG // len(piece)):
        yield piece
    yield b'"}'


def _post_big(url: str, *, chunked: bool) -> tuple[int, dict[str, str], bytes]:
    """POST the 5 MB body over a real socket (with ``Content-Length`` or chunked), reading
    the answer while sending: the server may answer before the body is all sent."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=POLL)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG + 32}"
    sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
                 .encode())
    received = b""
    sock.setblocking(False)
    try:
        for piece in _big_body():
            data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
            while data:
                try:
                    data = data[sock.send(data):]
                except BlockingIOError:
                    pass
                except OSError:  # the server answered and closed: stop sending
                    data = b""
                    break
                try:
                    received += sock.recv(65536)
                except BlockingIOError:
                    time.sleep(0.001)
                if b"\r\n\r\n" in received:
                    break
            if b"\r\n\r\n" in received:
                break
        sock.setblocking(True)
        deadline = time.monotonic() + POLL
        while (b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}")) and time.monotonic() < deadline:
            try:
                more = sock.recv(65536)
            except OSError:
                break
            if not more:
                break
            received += more
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
    return status, {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_5mb_anonymous_body_is_a_413_and_the_server_keeps_answering(gated: str, chunked: bool) -> None:
    with httpx.Client(base_url=gated, timeout=POLL) as client:
        small = client.post("/v1/completions", json={"model": "locked", "prompt": "hi"})
    assert small.status_code == 401  # the agent does refuse anonymous callers
    before = len(Recorder.calls)
    status, headers, body = _post_big(gated, chunked=chunked)
    assert status == 413, body[:300]
    assert headers["content-type"] == "application/json"
    assert "server.max_body_bytes" in body.decode()
    # Refused before the body was read (so before the agent, named in it, was known): no hook ran.
    assert len(Recorder.calls) == before
    with httpx.Client(base_url=gated, timeout=POLL) as client:
        for _ in range(3):
            started = time.monotonic()
            health = client.get("/health")
            assert health.status_code == 200 and time.monotonic() - started < 2

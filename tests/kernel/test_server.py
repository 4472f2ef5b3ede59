"""The HTTP surface, driven in-process through ASGI (and the official openai client)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_specs import (
    HttpRequest,
    ProviderTimeout,
    RequestContext,
    Skill,
    hookimpl,
    http,
    tool,
)


class Broken(Skill):
    name = "broken"

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        if ctx.headers.get("x-break"):
            raise KeyError("internal detail that must not leak")


class SlowProvider(Skill):
    name = "slowprov"
    provider = "slow"

    @hookimpl
    def llm_complete(self) -> None:
        raise ProviderTimeout("provider 'slow' did not answer within 0.1 s", plugin="slow")


class Api(Skill):
    name = "api"

    @tool(scope="owner")
    def owner_tool(self) -> str:
        """Not public."""
        return "x"

    @tool
    def lookup(self, key: str) -> str:
        """Look a key up."""
        return key

    @http("stats", methods=["GET", "POST"])
    def stats(self, ctx: RequestContext, request: HttpRequest) -> dict[str, Any]:
        return {"agent": ctx.agent.name, "method": request.method, "q": request.query.get("q")}


AGENTS = {
    "bot": {
        "description": "Answers billing questions",
        "intents": ["billing", "invoices"],
        "model": "scripted/s",
        "skills": {
            "broken": None,
            "api": None,
            "scripted": {"scripts": {"s": {"turns": [{"content": "scripted reply"}], "repeat": True}}},
        },
    },
    "helper": {"description": "Echoes things", "model": "scripted/echo"},
    "failing": {
        "model": "scripted/fail",
        "skills": {"scripted": {"scripts": {"fail": [{"error": "upstream exploded: 500 Internal Server Error"}]}}},
    },
    "slow": {"model": "slow/model", "skills": {"slowprov": None}},
}


@pytest.fixture
def kernel() -> Any:
    return make_kernel(AGENTS, plugins=[scripted, Broken, SlowProvider, Api], server={"metrics_port": None, "max_body_bytes": 2048})


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


async def test_official_client_on_agent_base_url(kernel: Any) -> None:
    async with kernel_client(kernel) as http_client:
        client = openai.AsyncOpenAI(base_url="http://kernel/bot", api_key="unused", http_client=http_client)
        completion = await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "scripted reply"
    assert completion.model == "bot"
    assert completion.usage is not None and completion.usage.total_tokens > 0


async def test_official_client_on_v1_with_model_as_agent(kernel: Any) -> None:
    async with kernel_client(kernel) as http_client:
        client = openai.AsyncOpenAI(base_url="http://kernel/v1", api_key="unused", http_client=http_client)
        models = await client.models.list()
        completion = await client.chat.completions.create(model="helper", messages=[{"role": "user", "content": "ping"}])
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "x"}])
    assert {m.id for m in models.data} == set(AGENTS)
    assert completion.choices[0].message.content == "You said: ping"
    assert "no agent named 'nobody'" in str(missing.value)


async def test_streaming_over_asgi_is_sse(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/helper/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": "a b"}]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "You said: a b"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["total_tokens"] > 0
    assert response.headers["x-request-id"] == chunks[0]["id"]


async def test_a_stream_whose_chunks_come_together_leaves_in_one_write(kernel: Any) -> None:
    """Chunks buffered when the stream ends leave with ``[DONE]`` in the last ASGI message:
    the scripted model makes every chunk at once, so the whole stream is one body message
    (a server pays for every message it frames and writes)."""
    body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "one two three"}]}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/helper/chat/completions", "raw_path": b"/helper/chat/completions", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
             "headers": [(b"host", b"kernel"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    requests = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with kernel.lifespan():
        await kernel.asgi_app()(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["more_body"] is False
    events = [e for e in sent[1]["body"].decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "You said: one two three"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_malformed_json_is_a_400_that_says_so(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_json" and "not valid JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ],
)
async def test_wrong_types_are_a_400_naming_the_field(kernel: Any, body: dict[str, Any], param: str) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param
    assert param in error["message"]


async def test_missing_and_empty_messages(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        missing = await client.post("/bot/chat/completions", json={})
        empty = await client.post("/bot/chat/completions", json={"messages": []})
    assert missing.status_code == 400 and "messages" in error_of(missing)["message"]
    assert empty.status_code == 400 and error_of(empty)["param"] == "messages"


async def test_unknown_agent_is_a_404(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/nobody/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        info = await client.get("/nobody")
    assert response.status_code == 404 and error_of(response)["code"] == "agent_not_found"
    assert "bot" in error_of(response)["message"]  # it lists the agents that exist
    assert info.status_code == 404


async def test_body_over_the_limit_is_a_413(kernel: Any) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json=big)
    assert response.status_code == 413
    assert "max_body_bytes" in error_of(response)["message"]


async def test_provider_failure_is_a_502_with_the_providers_message(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/failing/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502
    assert "upstream exploded" in error_of(response)["message"]


async def test_provider_timeout_is_a_504(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/slow/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        streamed = await client.post("/slow/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 504 and "slow" in error_of(response)["message"]
    # An error before the first chunk still gets its status and a JSON body.
    assert streamed.status_code == 504 and streamed.headers["content-type"] == "application/json"


async def test_a_crashing_hook_is_a_500_without_a_traceback(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/bot/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, headers={"x-break": "1"})
    assert response.status_code == 500
    error = error_of(response)
    assert "plugin 'broken' failed in hook on_connection" in error["message"]
    assert "Traceback" not in response.text


async def test_unknown_routes_and_methods_are_openai_shaped(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        route = await client.get("/bot/chat/completions")
        nothing = await client.get("/v1/nothing/here/at/all")
    assert route.status_code == 405 and error_of(route)["code"] == "method_not_allowed"
    assert nothing.status_code == 404 and error_of(nothing)["code"] == "route_not_found"


async def test_agent_info_lists_public_tools_only(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        info = (await client.get("/bot")).json()
    assert info["name"] == "bot" and info["description"] == "Answers billing questions"
    assert [t["name"] for t in info["tools"]] == ["lookup"]
    assert info["skills"] == ["broken", "api", "scripted"]
    assert info["intents"] == ["billing", "invoices"]


async def test_agent_search(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        found = (await client.get("/agents", params={"search": "billing"})).json()["data"]
        everyone = (await client.get("/agents", params={"top_k": 2})).json()["data"]
        bad = await client.get("/agents", params={"top_k": "many"})
    assert [a["name"] for a in found] == ["bot"]
    assert len(everyone) == 2
    assert bad.status_code == 400


async def test_health_routes(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        for path in ("/", "/health", "/live", "/ready", "/health/detailed"):
            response = await client.get(path)
            assert response.status_code == 200, path
        detailed = (await client.get("/health/detailed")).json()
    assert detailed["status"] == "healthy"
    assert detailed["system"]["memory_rss_bytes"] > 0
    assert set(detailed["agents"]) == set(AGENTS)


async def test_health_is_503_before_start_and_while_stopping() -> None:
    kernel = make_kernel(plugins=[scripted])
    app = kernel.asgi_app()
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://k") as client:
        assert (await client.get("/ready")).status_code == 503
        assert (await client.get("/live")).status_code == 200


async def test_legacy_completions(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        response = await client.post("/v1/completions", json={"model": "helper", "prompt": "old school"})
    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == "You said: old school"


async def test_skill_http_endpoint(kernel: Any) -> None:
    async with kernel_client(kernel) as client:
        got = await client.get("/bot/stats", params={"q": "1"})
        missing = await client.get("/bot/nothing")
    assert got.json() == {"agent": "bot", "method": "GET", "q": "1"}
    assert missing.status_code == 404


async def test_embedding_in_a_host_fastapi_app_with_lifespan() -> None:
    import httpx
    from fastapi import FastAPI

    started: list[str] = []

    def startup(kernel: Any) -> None:
        started.append("kernel")

    import types

    from robutler_specs import hookimpl as mark

    module = types.ModuleType("startup_probe")
    module.robutler_startup = mark(startup)  # type: ignore[attr-defined]
    kernel = make_kernel({"helper": {"model": "scripted/echo"}}, plugins=[scripted, module])
    host = FastAPI(lifespan=kernel.lifespan)

    @host.get("/hello")
    def hello() -> dict[str, str]:
        return {"host": "yes"}

    host.mount("/ai", kernel.asgi_app())
    async with host.router.lifespan_context(host):
        assert started == ["kernel"]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://host") as http_client:
            assert (await http_client.get("/hello")).json() == {"host": "yes"}
            client = openai.AsyncOpenAI(base_url="http://host/ai/v1", api_key="x", http_client=http_client)
            completion = await client.chat.completions.create(model="helper", messages=[{"role": "user", "content": "embedded"}])
            assert completion.choices[0].message.content == "You said: embedded"
            assert (await http_client.get("/ai/health")).json()["status"] == "healthy"
    assert kernel.started is False


class Priced(Skill):
    """Sets a cost and a header in finalize_connection; describes itself; has a health check."""

    name = "priced"

    @hookimpl
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        if error is None:
            ctx.cost = 1.25
            ctx.response_headers["x-robutler-cost"] = "1.25"

    def describe(self) -> dict[str, Any]:
        return {"per_request": 1.25}

    def health_checks(self) -> dict[str, Any]:
        async def ledger() -> str:
            return "ok"

        return {"priced.ledger": ledger}


async def test_cost_set_in_finalize_reaches_json_and_stream_usage() -> None:
    kernel = make_kernel({"shop": {"model": "scripted/echo", "skills": {"priced": None}}}, plugins=[scripted, Priced])
    async with kernel_client(kernel) as client:
        plain = await client.post("/shop/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        streamed = await client.post("/shop/chat/completions", json={"stream": True, "messages": [{"role": "user", "content": "x"}]})
        info = (await client.get("/shop")).json()
        detailed = (await client.get("/health/detailed")).json()
    assert plain.json()["usage"]["cost"] == 1.25 and plain.headers["x-robutler-cost"] == "1.25"
    final = json.loads(streamed.text.split("\n\n")[-3].removeprefix("data: "))
    assert final["usage"]["cost"] == 1.25
    assert info["skill_info"] == {"priced": {"per_request": 1.25}}
    assert detailed["checks"]["priced.ledger"] == {"status": "healthy", "latency_ms": detailed["checks"]["priced.ledger"]["latency_ms"], "detail": "ok"}

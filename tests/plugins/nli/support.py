"""Helpers of the nli tests: agent configs with auth and payments, ledgers on SQLite files,
and a misbehaving OpenAI-compatible callee on a loopback port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

import robutler_plugin_auth as auth
import robutler_plugin_nli as nli
import robutler_plugin_payments as payments
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import make_kernel
from robutler_plugin_payments import LedgerConfig, make_ledger
from robutler_plugin_payments.ledger import Ledger

PLUGINS = [scripted, auth, payments, nli]
ALICE_KEY = "sk-alice-0123456789abcdef"
#: The key agent A uses at server B (B's auth knows it as user ``agent-a``).
A_AT_B_KEY = "sk-agent-a-at-b-0123456789"


def chat(text: str, **body: Any) -> dict[str, Any]:
    """A chat completion request body."""
    return {"messages": [{"role": "user", "content": text}], **body}


def alice(**headers: str) -> dict[str, str]:
    """Headers of a request alice makes (her own API key)."""
    return {"Authorization": f"Bearer {ALICE_KEY}", **headers}


def micro(value: str | int | Decimal) -> int:
    """Credits as micro-credits (exact)."""
    return int(Decimal(str(value)) * 1_000_000)


def ledger_settings(tmp_path: Path, name: str) -> dict[str, Any]:
    """A SQLite ledger of its own for one server."""
    return {"backend": "sqlite", "path": str(tmp_path / name / "payments.sqlite3")}


@asynccontextmanager
async def ledger(settings: dict[str, Any]) -> AsyncIterator[Ledger]:
    """An operator's handle on a server's ledger."""
    handle = make_ledger(msgspec.convert(settings, LedgerConfig))
    await handle.open()
    try:
        yield handle
    finally:
        await handle.close()


def priced(settings: dict[str, Any], *, fee: str, prompt: str = "0", completion: str = "0") -> dict[str, Any]:
    """The payments skill on ``settings``: a request fee and prices per 1K tokens."""
    return {**settings, "request_fee": fee, "models": {"scripted/*": {"prompt": prompt, "completion": completion}}}


def agent_a(settings: dict[str, Any], *, nli_config: dict[str, Any], model: str = "scripted/echo",
            scripts: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Agent A: alice calls it with her key and pays 0.5 a request from her account."""
    return {
        "model": model,
        "skills": {
            "auth": {"api_keys": [{"key": ALICE_KEY, "user_id": "alice"}]},
            "payments": priced(settings, fee="0.5"),
            "nli": nli_config,
            "scripted": {"scripts": scripts or {}},
        },
        **extra,
    }


def agent_b(settings: dict[str, Any], *, fee: str = "0.25", **extra: Any) -> dict[str, Any]:
    """Agent B: charges agent A's account for the fee and its tokens (1 and 2 credits per 1K)."""
    return {
        "model": "scripted/echo",
        "skills": {
            "auth": {"api_keys": [{"key": A_AT_B_KEY, "user_id": "agent-a"}]},
            "payments": priced(settings, fee=fee, prompt="1", completion="2"),
        },
        **extra,
    }


def kernel(agents: dict[str, dict[str, Any]]) -> Any:
    """A kernel with the scripted model, auth, payments and nli."""
    return make_kernel(agents, plugins=PLUGINS)


def tool_said(response: Any) -> str:
    """What the scripted model said a tool returned (``Tool ask_agent returned: ...``)."""
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    prefix = "Tool ask_agent returned: "
    assert content.startswith(prefix), content
    return content[len(prefix):]


def chunks_of(text: str) -> list[dict[str, Any]]:
    """The JSON events of an SSE body."""
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def completion_body(text: str, cost: float | None = None) -> dict[str, Any]:
    """An OpenAI-shaped completion."""
    usage: dict[str, Any] = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    if cost is not None:
        usage["cost"] = cost
    return {
        "id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "callee",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }


@dataclass
class Callee:
    """An OpenAI-compatible server on a loopback port that answers by path, and misbehaves
    on purpose; it records every request (headers lower-cased, JSON body)."""

    url: str = ""
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{name}/chat/completions", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        body = await request.json()
        self.requests.append((name, {k.lower(): v for k, v in request.headers.items()}, body))
        if name == "ok":
            return web.json_response(completion_body("pong", cost=0.125))
        if name == "fail":
            return web.json_response({"error": {"message": "model exploded", "type": "api_error", "code": "boom"}},
                                     status=500)
        if name == "poor":
            return web.json_response({"error": {"message": "insufficient credits", "code": "insufficient_credits"}},
                                     status=402)
        if name == "notjson":
            return web.Response(text="hello, I am not JSON")
        if name == "big":
            return web.Response(body=b"x" * 300_000, content_type="application/json")
        if name == "slow":
            await asyncio.sleep(5)
            return web.json_response(completion_body("late"))
        if name == "redirect":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data")
        if name == "stream":
            return await self.stream(request, words=["one ", "two ", "three"])
        if name == "bigstream":
            return await self.stream(request, words=["x" * 1000] * 400)
        return web.json_response({"error": {"message": f"no agent {name}"}}, status=404)

    async def stream(self, request: web.Request, words: list[str]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": "callee"}
        for word in words:
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7, "cost": 0.2}}
        await response.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response


@asynccontextmanager
async def callee() -> AsyncIterator[Callee]:
    """A :class:`Callee` served on 127.0.0.1."""
    server = Callee()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()

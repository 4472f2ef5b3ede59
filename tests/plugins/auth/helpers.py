"""Shared pieces of the auth plugin's tests: keys, tokens, a probe skill, a kernel builder."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import jwt
import openai

import robutler_plugin_auth as auth
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_plugin_auth import AuthSkill
from robutler_specs import RequestContext, Skill, tool

ALICE_KEY = "alice-key-0123456789abcdefghijklmnop"
BOB_KEY = "bob-key-0123456789abcdefghijklmnopqrs"
ROOT_KEY = "root-key-0123456789abcdefghijklmnopq"
HS_SECRET = "hs256-shared-secret-0123456789-abcdefghijklmnop"


class Whoami(Skill):
    """A probe: its tool reports the identity the auth skill set."""

    name = "whoami"

    @tool
    def whoami(self, ctx: RequestContext) -> str:
        """Who is calling."""
        identity = ctx.identity
        return json.dumps({"user_id": identity.user_id, "scopes": list(identity.scopes), "source": identity.source})


def agent(auth_config: Mapping[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """An agent on ``scripted/echo`` with the auth skill (``None``: default config) and the probe."""
    return {"model": "scripted/echo", "skills": {"auth": auth_config, "whoami": None}, **extra}


def keys_config(**extra: Any) -> dict[str, Any]:
    """Three keys: alice (all), bob (all), root (admin)."""
    return {
        "api_keys": [
            {"key": ALICE_KEY, "user_id": "alice", "name": "alice laptop"},
            {"key": BOB_KEY, "user_id": "bob"},
            {"key": ROOT_KEY, "user_id": "root", "scopes": ["admin"]},
        ],
        **extra,
    }


def build(agents: Mapping[str, Mapping[str, Any]], *more: Any, **kw: Any) -> Any:
    """A kernel with the auth, scripted and probe plugins (and ``more``)."""
    return make_kernel(dict(agents), plugins=[scripted, auth, Whoami, *more], **kw)


def auth_skill(kernel: Any, agent_name: str = "bot") -> AuthSkill:
    """The auth skill instance of an agent."""
    found = [s for s in kernel.agent(agent_name).skills if isinstance(s, AuthSkill)]
    assert len(found) == 1
    return found[0]


@asynccontextmanager
async def openai_client(kernel: Any, key: str | None, agent_name: str = "bot") -> AsyncIterator[openai.AsyncOpenAI]:
    """The official client on the agent's base URL; ``key=None`` sends no Authorization."""
    async with kernel_client(kernel) as http:
        headers = {"Authorization": ""} if key is None else None
        yield openai.AsyncOpenAI(
            base_url=f"http://kernel/{agent_name}",
            api_key=key or "unused",
            http_client=http,
            max_retries=0,
            default_headers=headers,
        )


async def whoami(client: openai.AsyncOpenAI) -> dict[str, Any]:
    """Ask the agent to run the probe; the identity it reported."""
    agent = str(client.base_url).rstrip("/").rsplit("/", 1)[-1]
    reply = await client.chat.completions.create(model=agent, messages=[{"role": "user", "content": "call whoami"}])
    content = reply.choices[0].message.content or ""
    assert content.startswith("Tool whoami returned: "), content
    return dict(json.loads(content.removeprefix("Tool whoami returned: ")))


def token(key: Any, algorithm: str = "HS256", *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
    """A JWT for ``sub=alice`` expiring in an hour, with ``claims`` added (``None`` removes)."""
    payload: dict[str, Any] = {"sub": "alice", "exp": int(time.time()) + 3600, "iat": int(time.time())}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def error_of(response: Any) -> dict[str, Any]:
    """The OpenAI-shaped error of an httpx response."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


async def post(client: Any, headers: Mapping[str, str] | None = None, agent_name: str = "bot", **body: Any) -> Any:
    """POST a chat completion with raw headers through an httpx client."""
    payload = {"messages": [{"role": "user", "content": "hello"}], **body}
    return await client.post(f"/{agent_name}/chat/completions", json=payload, headers=dict(headers or {}))


def strings_in(obj: Any, seen: set[int] | None = None) -> list[str]:
    """Every str and bytes reachable from ``obj`` (attributes, slots, containers, structs)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, bytes | bytearray):
        return [bytes(obj).decode("latin-1")]
    if isinstance(obj, int | float | bool | type) or obj is None or (callable(obj) and not hasattr(obj, "__dict__")):
        return []
    out: list[str] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out += strings_in(k, seen) + strings_in(v, seen)
        return out
    if isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            out += strings_in(v, seen)
        return out
    for name in getattr(type(obj), "__struct_fields__", ()):  # msgspec structs
        out += strings_in(getattr(obj, name), seen)
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                out += strings_in(getattr(obj, name), seen)
    if hasattr(obj, "__dict__") and type(obj).__module__.startswith(("robutler", "tests")):
        out += strings_in(vars(obj), seen)
    return out

"""The image's command and config, run outside Docker against the local services.

No Docker engine runs here, so this test does what the container would: it lays out
``deploy/robutler.yaml`` and ``deploy/agents/`` as the image and compose have them
(``/etc/robutler``), runs the Dockerfile's CMD (``robutler-kernel serve --config ...
--host 0.0.0.0``; ServeProcess adds ``--port 0`` and a free metrics port) from the image's
working directory with the environment compose gives it, and checks that:

- without any provider key the server starts, the offline agents answer, and the openai
  agent alone fails with an error naming ``OPENAI_API_KEY``;
- with a key (and ``OPENAI_BASE_URL`` at a local fake OpenAI) the openai agent answers;
- the shared backends are really used: conversations and rate limits in Redis, the ledger
  and long-term memory in PostgreSQL, vector memory in Milvus.

Milvus: compose runs Milvus standalone (``MILVUS_URI=http://milvus:19530``); here
``MILVUS_URI`` is unset, so the config's default, an embedded milvus-lite file in the working
directory, serves the same ``vector_memory`` skill through the same pymilvus client. The
Milvus *server* itself is not exercised here (no Docker); everything else is the real thing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from robutler_kernel.testing import ServeProcess
from robutler_kernel.testing.fake_openai import FakeOpenAI

from .support import (
    PG_DSN,
    free_port,
    fresh_redis_db,
    image_cmd,
    image_layout,
    release_redis_db,
    require_services,
    serve_args,
)

pytestmark = pytest.mark.e2e


def chat(url: str, agent: str, text: str, **extra: object) -> httpx.Response:
    headers = extra.pop("headers", {})
    body = {"messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{url}/{agent}/chat/completions", json=body, headers=headers, timeout=30)  # type: ignore[arg-type]


@pytest.fixture()
def backends():
    require_services()
    url = fresh_redis_db()
    yield {"DATABASE_URL": PG_DSN, "REDIS_URL": url}
    release_redis_db(url)


def env_without_keys(extra: dict[str, str]) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "MILVUS_"))}
    return {**env, **extra}


def serve(tmp_path: Path, env: dict[str, str]) -> ServeProcess:
    config, work = image_layout(tmp_path)
    return ServeProcess(config, cwd=work, env=env, args=serve_args(image_cmd(), free_port()), timeout=90)


def test_without_a_provider_key_the_offline_agents_answer(tmp_path: Path, backends: dict[str, str]) -> None:
    import os

    env = env_without_keys(backends)
    with serve(tmp_path, env) as server:
        # ServeProcess sets the environment on top of ours: make sure no key leaks in.
        assert "OPENAI_API_KEY" not in env and server.process.poll() is None
        r = chat(server.url, "echo", "hello there", headers={"X-Conversation-Id": "c-" + uuid.uuid4().hex})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "You said: hello there"
        r = chat(server.url, "assistant", "hello")
        assert r.status_code == 500 and r.json()["error"]["code"] == "agent_config_error"
        assert "OPENAI_API_KEY" in r.json()["error"]["message"]
        ready = httpx.get(f"{server.url}/ready", timeout=30)
        assert ready.status_code == 200, ready.text
    assert os.environ.get("OPENAI_API_KEY") is None or "OPENAI_API_KEY" not in env


def test_with_a_provider_key_the_openai_agent_answers(tmp_path: Path, backends: dict[str, str]) -> None:
    with FakeOpenAI() as fake:
        fake.add_reply("Hello from the provider.")
        env = env_without_keys({**backends, "OPENAI_API_KEY": "sk-test-deploy", "OPENAI_BASE_URL": fake.base_url})
        with serve(tmp_path, env) as server:
            r = chat(server.url, "assistant", "hello")
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "Hello from the provider."
            assert any(req.path.endswith("/chat/completions") for req in fake.requests)
            detailed = httpx.get(f"{server.url}/health/detailed", timeout=30).json()
            provider = detailed["checks"][f"openai:{fake.base_url}"]
            assert provider["status"] == "healthy" and provider["required"] is False


def test_the_shared_backends_are_used(tmp_path: Path, backends: dict[str, str]) -> None:
    import redis

    user = "deploy-" + uuid.uuid4().hex[:8]
    conversation = "c-" + uuid.uuid4().hex
    # Six a minute: each request keeps the rate limit's bucket in Redis for ten seconds.
    with serve(tmp_path, env_without_keys({**backends, "ROBUTLER_REQUESTS_PER_MINUTE": "6"})) as server:
        url = server.url
        # Redis: the conversation, and the rate limit's bucket.
        assert chat(url, "echo", "first", headers={"X-Conversation-Id": conversation}).status_code == 200
        # PostgreSQL: long-term memory (the scripted model calls the tool it is told to).
        r = chat(url, "echo", "call remember key=colour value=blue", user=user)
        assert r.status_code == 200 and "Tool remember returned" in r.json()["choices"][0]["message"]["content"], r.text
        # Milvus (milvus-lite here): vector memory.
        r = chat(url, "echo", 'call store_document text="the deploy test document"', user=user)
        assert r.status_code == 200 and "Tool store_document returned" in r.text, r.text
        r = chat(url, "echo", 'call search_memory query="deploy test"', user=user)
        assert "the deploy test document" in r.json()["choices"][0]["message"]["content"], r.text
        # PostgreSQL: the ledger (a prepaid token pays the metered agent's fee).
        token = _payments(tmp_path, backends, "token", "create", "--balance", "1").strip().split()[-1]
        assert token.startswith("rpt_"), token
        r = chat(url, "metered", "pay", headers={"X-Payment-Token": token})
        assert r.status_code == 200 and r.headers["x-robutler-cost"] == "0.01", (r.status_code, r.text, r.headers)
        assert chat(url, "metered", "no token").status_code == 402
    client = redis.Redis.from_url(backends["REDIS_URL"])
    keys = {k.decode() for k in client.keys("*")}
    client.close()
    assert any(k.startswith("robutler:stm:") and conversation in k for k in keys), keys
    assert any(k.startswith("robutler:rl:") for k in keys), keys
    assert asyncio.run(_fact(user)) == "blue"
    assert (tmp_path / "var" / "lib" / "robutler" / "robutler-vector.db").exists()


def _payments(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    import os

    config = tmp_path / "etc" / "robutler" / "robutler.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "robutler_kernel.cli", "payments", "--config", str(config), *args],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def _fact(user: str) -> str | None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        row = await conn.fetchrow("SELECT value FROM robutler_longterm WHERE user_id = $1 AND namespace = 'echo' AND key = 'colour'", "user:" + user)
    finally:
        await conn.close()
    return None if row is None else str(row["value"])

"""Two ``robutler-kernel serve`` processes on one Redis continue the same conversations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from robutler_kernel.testing import ServeProcess
from robutler_plugin_memory.codec import decode

from .helpers import REDIS_URL, unique_prefix

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]


def Replica(config: Path) -> ServeProcess:
    """One ``robutler-kernel serve`` replica with only the plugins this test needs."""
    return ServeProcess(config, plugins=["scripted", "memory"], cwd=ROOT)


@pytest.fixture
def stm_replicas(tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess, str]]:
    prefix = unique_prefix()
    config = tmp_path / "robutler.yaml"
    config.write_text(
        f"""
server: {{host: 127.0.0.1, port: 0, metrics_port: null}}
agents:
  bot:
    model: scripted/story
    skills:
      scripted:
        scripts:
          story: [{{content: chapter one}}, {{content: chapter two}}, {{content: chapter three}}]
      short_term_memory: {{backend: redis, redis_url: "{REDIS_URL}", key_prefix: "{prefix}"}}
"""
    )
    first = Replica(config)
    try:
        second = Replica(config)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second, prefix
    finally:
        first.stop()
        second.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def say(url: str, text: str, conversation: str) -> str:
    response = httpx.post(
        f"{url}/bot/chat/completions",
        json={"messages": [{"role": "user", "content": text}]},
        headers={"X-Conversation-Id": conversation},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_a_conversation_continues_across_two_serve_processes(stm_replicas: tuple[ServeProcess, ServeProcess, str]) -> None:
    """The scripted model plays the turn numbered by the assistant messages it is sent, so
    each answer proves which history reached the model."""
    a, b, prefix = stm_replicas
    assert a.url != b.url
    assert say(a.url, "begin", "saga") == "chapter one"
    assert say(b.url, "go on", "saga") == "chapter two"  # b got a's turn from Redis
    assert say(a.url, "and then?", "saga") == "chapter three"  # a got b's turn
    assert say(b.url, "begin", "other") == "chapter one"  # another conversation starts fresh
    client = redis.Redis.from_url(REDIS_URL)
    try:
        stored = [decode(item) for item in client.lrange(prefix + "bot:c:anon:saga", 0, -1)]
    finally:
        client.close()
    assert [(m.role, m.text()) for m in stored] == [
        ("user", "begin"), ("assistant", "chapter one"),
        ("user", "go on"), ("assistant", "chapter two"),
        ("user", "and then?"), ("assistant", "chapter three"),
    ]

"""Two ``robutler-kernel serve`` processes on one Redis continue the same conversations."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from robutler_plugin_memory.codec import decode

from .helpers import REDIS_URL, unique_prefix

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]


class Replica:
    """A ``robutler-kernel serve`` subprocess; every wait is bounded."""

    def __init__(self, config: Path, timeout: float = 30) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # Only the plugins this test needs: a half-written plugin elsewhere cannot break it.
            "ROBUTLER_LOAD_PLUGINS": "scripted,memory",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "robutler_kernel.cli", "serve", "--config", str(config), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )
        self.output: list[str] = []
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("robutler-kernel serve did not start:\n" + "".join(self.output))
            if line.startswith("Robutler serving"):
                self.url = line.rsplit(" at ", 1)[1].strip()
                return

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def stm_replicas(tmp_path: Path) -> Iterator[tuple[Replica, Replica, str]]:
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


def test_a_conversation_continues_across_two_serve_processes(stm_replicas: tuple[Replica, Replica, str]) -> None:
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

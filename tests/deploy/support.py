"""What the deployment tests share: the image's command and config laid out as the image
has them (``/etc/robutler``, the working directory ``/var/lib/robutler``), the local
services (PostgreSQL, Redis) and free ports."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PG_DSN = os.environ.get("ROBUTLER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def image_cmd() -> list[str]:
    """The Dockerfile's CMD (exec form)."""
    cmd = None
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            cmd = json.loads(line[4:])
    assert cmd, "the Dockerfile has no CMD"
    return list(cmd)


def image_layout(root: Path) -> tuple[Path, Path]:
    """Copy deploy's config where the image has it (``<root>/etc/robutler/robutler.yaml`` and
    ``agents/``, as compose and Kubernetes mount them); returns (config, working directory)."""
    etc = root / "etc" / "robutler"
    etc.mkdir(parents=True)
    shutil.copy(DEPLOY / "robutler.yaml", etc / "robutler.yaml")
    shutil.copytree(DEPLOY / "agents", etc / "agents")
    work = root / "var" / "lib" / "robutler"
    work.mkdir(parents=True)
    return etc / "robutler.yaml", work


def serve_args(cmd: list[str], metrics_port: int) -> list[str]:
    """The CMD's arguments after its config (``--host 0.0.0.0``), for ServeProcess (which
    runs ``robutler-kernel serve --config FILE --port 0``), plus a free metrics port."""
    assert cmd[:3] == ["robutler-kernel", "serve", "--config"], shlex.join(cmd)
    return [*cmd[4:], "--metrics-port", str(metrics_port)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_services() -> None:
    """Skip (saying why) when PostgreSQL or Redis is not reachable."""
    for host, port, what in (("127.0.0.1", 5432, "PostgreSQL"), (REDIS_HOST, REDIS_PORT, "Redis")):
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            pytest.skip(f"{what} is not running on {host}:{port} (.ci/run starts it)")


def fresh_redis_db() -> str:
    """A Redis database of its own for one test (flushed first), as a URL."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    for db in range(15, 5, -1):
        probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if probe.set("robutler:deploy-test:lock", "1", nx=True, ex=600):
            probe.flushdb()
            probe.set("robutler:deploy-test:lock", "1", ex=600)
            probe.close()
            client.close()
            return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
        probe.close()
    client.close()
    pytest.skip("no free Redis database among 6..15 for the deployment test")
    raise AssertionError  # unreachable


def release_redis_db(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()

"""A backend that is down: the kernel starts, health says which backend, requests get a 503
naming the backend and the setting to check, and service resumes when it comes back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from robutler_kernel.testing import kernel_client
from robutler_specs import ConfigError

from .conftest import LONGTERM_PG_DSN
from .helpers import chat, memory_kernel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def tcp_proxy(port: int, target: tuple[str, int] | None) -> AsyncIterator[None]:
    """Listen on ``port``: forward to ``target``, or (``None``) accept and never answer."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if target is None:
            await asyncio.sleep(3600)  # a black hole (cancelled when the server closes)
            return
        up_reader, up_writer = await asyncio.open_connection(*target)
        for task in (asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))):
            tasks.add(task)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await asyncio.gather(*tasks, return_exceptions=True)


def pg_on(port: int, table: str, **extra: Any) -> dict[str, Any]:
    return {"backend": "postgres", "dsn": f"postgresql://postgres@127.0.0.1:{port}/test", "table": table, **extra}


async def test_postgres_down_gives_503_and_unhealthy_checks_then_recovers(longterm_pg_table: str) -> None:
    port = free_port()
    config = pg_on(port, longterm_pg_table, retry_interval=0.0, inject={"enabled": True})
    kernel = memory_kernel({"bot": config})
    async with kernel_client(kernel) as client:  # the kernel starts although the database is down
        message = await chat(client, "bot", "call remember key=a value=b", user="u", status=503)
        assert f"long-term memory backend postgres (127.0.0.1:{port}/test table {longterm_pg_table})" in message
        assert "is unavailable" in message and "check skills.long_term_memory.dsn" in message
        response = await client.post("/bot/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "user": "u"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "memory_backend_unavailable"

        detailed = await client.get("/health/detailed")
        assert detailed.status_code == 503
        (name, check), = detailed.json()["checks"].items()
        assert name == f"long_term_memory:postgres:127.0.0.1:{port}/test table {longterm_pg_table}"
        assert check["status"] == "unhealthy" and "skills.long_term_memory.dsn" in check["error"]
        assert (await client.get("/ready")).status_code == 503

        # the database "comes back" on that port: the next request reconnects
        async with tcp_proxy(port, ("127.0.0.1", 5432)):
            assert "Remembered" in await chat(client, "bot", "call remember key=a value=b", user="u")
            assert (await client.get("/ready")).status_code == 200


async def test_a_backend_that_never_answers_times_out(longterm_pg_table: str) -> None:
    port = free_port()
    async with tcp_proxy(port, None):
        kernel = memory_kernel({"bot": pg_on(port, longterm_pg_table, timeout=0.5)})
        async with kernel_client(kernel) as client:
            async with asyncio.timeout(10):
                message = await chat(client, "bot", "call list_memories", user="u", status=503)
    assert "did not answer within 0.5 s" in message


async def test_retry_interval_makes_requests_fail_fast(longterm_pg_table: str) -> None:
    port = free_port()
    kernel = memory_kernel({"bot": pg_on(port, longterm_pg_table, retry_interval=60)})
    async with kernel_client(kernel) as client, tcp_proxy(port, ("127.0.0.1", 5432)):
        # start-up failed moments ago: within retry_interval the request does not retry
        message = await chat(client, "bot", "call list_memories", user="u", status=503)
    assert "ConnectionRefusedError" in message or "Connect call failed" in message


async def test_unwritable_sqlite_path_names_the_path_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database directory should be")
    kernel = memory_kernel({"bot": {"path": str(blocker / "m.db")}})
    async with kernel_client(kernel) as client:
        message = await chat(client, "bot", "call remember key=a value=b", user="u", status=503)
        checks = (await client.get("/health/detailed")).json()["checks"]
    assert "long-term memory backend sqlite" in message and "check skills.long_term_memory.path" in message
    assert [c["status"] for c in checks.values()] == ["unhealthy"]


async def test_agents_on_one_backend_share_it_and_one_health_check(tmp_path: Path) -> None:
    config = {"path": str(tmp_path / "m.db")}
    kernel = memory_kernel({"one": config, "two": config, "three": {"path": str(tmp_path / "other.db")}})
    async with kernel_client(kernel) as client:
        checks = (await client.get("/health/detailed")).json()["checks"]
        stores = kernel.state["long_term_memory.stores"]
        assert len(stores) == 2 and sorted(s.refs for s in stores.values()) == [1, 2]
    assert sorted(c["status"] for c in checks.values()) == ["healthy", "healthy"]
    assert kernel.state["long_term_memory.stores"] == {}  # closed at shutdown


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"table": "x; DROP TABLE users"}, "must be a plain SQL identifier"),
        ({"table": "app.memories"}, "needs backend: postgres"),
        ({"user_from": ["cookie"]}, "each entry is 'identity', 'param' or 'header:"),
        ({"inject": {"enabled": True, "top_k": 0}}, "inject.top_k must be at least 1"),
        ({"max_memories": 0}, "max_memories must be at least 1"),
        ({"backend": "mysql"}, "Invalid enum value 'mysql'"),
    ],
)
def test_bad_config_is_a_clear_start_up_error(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=r"agents\.bot\.skills\.long_term_memory") as info:
        memory_kernel({"bot": config})
    assert expected in str(info.value)


def test_postgres_needs_a_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="needs `dsn` \\(or the DATABASE_URL"):
        memory_kernel({"bot": {"backend": "postgres"}})
    monkeypatch.setenv("DATABASE_URL", LONGTERM_PG_DSN)
    memory_kernel({"bot": {"backend": "postgres"}})  # taken from the environment

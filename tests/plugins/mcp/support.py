"""Helpers of the MCP tests: the tool server's command, an HTTP tool server process, chat."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robutler_kernel.testing.ports import wait_listening

TOOLSERVER = str(Path(__file__).with_name("toolserver.py"))


def stdio_server(**extra: Any) -> dict[str, Any]:
    """The config of the tool server over stdio."""
    return {"command": sys.executable, "args": [TOOLSERVER, "stdio"], **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_toolserver() -> Iterator[str]:
    """The tool server over streamable HTTP on a loopback port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, TOOLSERVER, "http", str(port)])
    try:
        if not wait_listening(port, proc, 20):
            raise RuntimeError("the HTTP tool server did not start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


async def say(client: Any, text: str, agent: str = "bot", **headers: str) -> str:
    """Send one user message; the answer's text (asserting a 200)."""
    response = await client.post(
        f"/{agent}/chat/completions", json={"messages": [{"role": "user", "content": text}]}, headers=headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])

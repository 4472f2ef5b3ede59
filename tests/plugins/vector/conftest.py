"""Fixtures of the vector memory tests: milvus-lite files under tmp_path, and a real
Milvus-protocol server (milvus-lite's own gRPC server, run as a subprocess) for the
``http://host:port`` code path."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import embed_plugin


def vector_free_port() -> int:
    """A port nothing listens on (for a moment)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MilvusServer:
    """``python -m milvus_lite server`` on a loopback port; ``stop()`` takes it down."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.port = port or vector_free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus_lite server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("milvus_lite server did not listen within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def vector_server(tmp_path: Path) -> Iterator[MilvusServer]:
    """A Milvus-protocol server of its own for one test."""
    server = MilvusServer(tmp_path / "server-data")
    yield server
    server.stop()


@pytest.fixture
def vector_embed_plugin() -> Iterator[object]:
    """The toy ``robutler_embed`` plugin module, reset."""
    embed_plugin.CALLS.clear()
    embed_plugin.MODE = "on"
    yield embed_plugin
    embed_plugin.MODE = "on"

"""Loopback ports that misbehave on purpose, for testing how providers fail to connect, and
waiting for a child process's port to listen."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def stalled_port() -> Iterator[int]:
    """A loopback port that never completes a connection while the block runs.

    It listens with the smallest accept queue, never accepts, and fills the queue itself;
    the kernel then drops further connection attempts, so a client waits until its own
    connect timeout, as with an unreachable host.
    """
    server = socket.socket()
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port: int = server.getsockname()[1]
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until something accepts connections on loopback ``port``; ``False`` when
    ``proc`` (the process that should listen) exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.05)


__all__ = ["closed_port", "stalled_port", "wait_listening"]

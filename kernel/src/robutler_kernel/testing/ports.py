"""Loopback ports that misbehave on purpose, for testing how providers fail to connect."""

from __future__ import annotations

import socket
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


__all__ = ["closed_port", "stalled_port"]

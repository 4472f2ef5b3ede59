"""The test kit's misbehaving ports: one refuses connections, one never completes them."""

from __future__ import annotations

import socket

import pytest

from robutler_kernel.testing import closed_port, stalled_port


def test_a_closed_port_refuses_at_once() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", closed_port()), timeout=2).close()


def test_a_stalled_port_never_completes_a_connection() -> None:
    with stalled_port() as port:
        with pytest.raises(TimeoutError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()

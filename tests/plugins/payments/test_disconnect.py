"""A client that hangs up mid-stream is charged for what it got, and the rest is released."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from decimal import Decimal
from typing import Any

from robutler_kernel.testing import LiveServer
from robutler_plugin_payments.ledger import Ledger, Reservation

from .support import agent, kernel, micro

WORDS = " ".join(f"word{i}" for i in range(80))


def _stream_then_hang_up(url: str, events_wanted: int) -> tuple[str, str]:
    """POST a streamed chat as alice, read a few SSE events, close the socket.
    Returns the request id and the text received."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"stream": True, "messages": [{"role": "user", "content": WORDS}]}).encode()
    received = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /bot/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Test-User: alice\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        deadline = time.monotonic() + 10
        while received.count(b"data: {") < events_wanted and time.monotonic() < deadline:
            received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    events = [json.loads(line[6:]) for line in received.decode().splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c.get("choices"))
    return events[0]["id"], text


async def _settled(ledger: Ledger, request_id: str) -> Reservation:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = await ledger.reservation(request_id)
        if held is not None and held.status != "held":
            return held
        await asyncio.sleep(0.02)
    raise AssertionError(f"request {request_id} was not settled within 10 s")


async def test_killed_stream_is_charged_for_what_was_delivered(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(100))
    prices = {"scripted/*": {"prompt": 1, "completion": 10}}
    k = kernel({"bot": agent(payments_settings, chunk_delay=0.05, models=prices, request_fee="0.1",
                             default_reservation=5)})
    with LiveServer(k) as server:
        request_id, received = await asyncio.to_thread(_stream_then_hang_up, server.url, 6)
        held = await _settled(payments_admin, request_id)
    assert 0 < len(received) < len(WORDS)
    assert held.status == "settled"
    [charge] = [t for t in await payments_admin.transactions("alice") if t.kind == "charge"]
    assert charge.request_id == request_id and -charge.amount == held.charged
    detail = json.loads(charge.detail or "{}")
    # The kernel meters the cut-off call (estimated from what was produced), so it is
    # billed like any other LLM call.
    assert detail["error"] == "CancelledError" and "interrupted" not in detail
    [cut] = detail["llm"]
    assert cut["model"] == "scripted/echo"
    # Billed: the fee, the estimated prompt, and at least the text the client received
    # (4 characters a token), never the whole answer.
    assert cut["completion_tokens"] >= -(-len(received) // 4)
    assert cut["completion_tokens"] < len(f"You said: {WORDS}") // 4
    expected = Decimal("0.1") + cut["prompt_tokens"] * Decimal("0.001") + cut["completion_tokens"] * Decimal("0.01")
    assert held.charged == micro(expected) and Decimal(cut["credits"]) == expected - Decimal("0.1")
    account = await payments_admin.account("alice")
    assert account is not None
    assert (account.available, account.reserved, account.spent) == (micro(100) - held.charged, 0, held.charged)

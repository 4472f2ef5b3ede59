"""A paid request is freed by reference counting: the payments skill keeps nothing in the
request's context that leads back to it (see tests/kernel/test_request_garbage.py)."""

from __future__ import annotations

from typing import Any

import pytest

from robutler_kernel.testing import kernel_client
from robutler_plugin_payments.ledger import Ledger

from ...kernel.test_request_garbage import cyclic_garbage, request_objects
from .support import agent, chat, kernel, micro, user

__all__ = ["cyclic_garbage"]  # the fixture, used below


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_paid_request_leaves_no_cycle(
    payments_settings: dict[str, Any], payments_admin: Ledger, cyclic_garbage: list[Any], stream: bool
) -> None:
    await payments_admin.create_account("alice", micro(100))
    k = kernel({"bot": agent(payments_settings, request_fee=1, default_reservation=2)})
    async with kernel_client(k) as client:
        for i in range(5):
            response = await client.post("/bot/chat/completions", json=chat(f"hello {i}", stream=stream),
                                         headers=user("alice"))
            assert response.status_code == 200, response.text
        account = await payments_admin.account("alice")
        assert account is not None and account.spent == micro(5)
        assert request_objects(cyclic_garbage) == []

"""The payments benchmark targets build configs the kernel accepts, on a seeded ledger."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import robutler_plugin_auth as auth
import robutler_plugin_payments as payments
import robutler_plugin_scripted as scripted
from bench import targets_payments
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_plugin_payments import LedgerConfig, make_ledger


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_bench_config_pays_for_the_load_generators_requests(backend: str) -> None:
    try:
        # The builder seeds the ledger with its own event loop, as the harness calls it.
        config = await asyncio.to_thread(targets_payments.auth_payments(backend), "http://127.0.0.1:9/v1")
        kernel = make_kernel(config["agents"], plugins=[scripted, payments, auth])
        async with kernel_client(kernel) as client:
            response = await client.post(
                "/v1/chat/completions", headers={"Authorization": f"Bearer {targets_payments.LOAD_KEY}"},
                json={"model": "bench", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert response.status_code == 200, response.text
        assert float(response.headers["X-Robutler-Cost"]) > 0
        ledger = make_ledger(msgspec.convert(targets_payments.ledger_settings(backend), LedgerConfig))
        await ledger.open()
        account = await ledger.account(targets_payments.ACCOUNT)
        await ledger.close()
        assert account is not None and account.spent > 0 and account.reserved == 0
    finally:
        await asyncio.to_thread(targets_payments.cleanup)

"""End to end with the real ``auth`` plugin: API keys name the account that pays."""

from __future__ import annotations

from typing import Any

import robutler_plugin_auth as auth
import robutler_plugin_payments as payments
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_plugin_payments.ledger import Ledger, hash_token

from .support import chat, micro

ALICE_KEY = "sk-alice-0123456789abcdef"
BOB_KEY = "sk-bob-0123456789abcdef0"


def _agent(settings: dict[str, Any], **auth_config: Any) -> dict[str, Any]:
    return {
        "model": "scripted/echo",
        "skills": {
            "auth": {"api_keys": [{"key": ALICE_KEY, "user_id": "alice"}, {"key": BOB_KEY, "user_id": "bob"}],
                     **auth_config},
            "payments": {**settings, "request_fee": "0.5", "models": {"scripted/*": {"prompt": 0}}},
        },
    }


async def test_api_keys_pick_the_account_that_pays(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_account("alice", micro(1))
    k = make_kernel({"bot": _agent(payments_settings)}, plugins=[scripted, payments, auth])
    async with kernel_client(k) as client:
        ok = [await client.post("/bot/chat/completions", json=chat("hi"),
                                headers={"Authorization": f"Bearer {ALICE_KEY}"}) for _ in range(3)]
        bob = await client.post("/bot/chat/completions", json=chat("hi"), headers={"X-API-Key": BOB_KEY})
        nobody = await client.post("/bot/chat/completions", json=chat("hi"))
    assert [r.status_code for r in ok] == [200, 200, 402]
    assert [r.headers.get("X-Robutler-Cost") for r in ok[:2]] == ["0.5", "0.5"]
    assert "account 'alice' has 0 credits available" in ok[2].json()["error"]["message"]
    assert bob.status_code == 402 and bob.json()["error"]["code"] == "no_credit_account"
    assert nobody.status_code == 401  # auth refuses before payments is asked
    account = await payments_admin.account("alice")
    assert account is not None and (account.available, account.spent) == (0, micro(1))


async def test_anonymous_callers_may_pay_with_a_token(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_token("tok_t", hash_token("rpt_anon"), micro(1))
    k = make_kernel({"bot": _agent(payments_settings, allow_anonymous=True)}, plugins=[scripted, payments, auth])
    async with kernel_client(k) as client:
        paid = await client.post("/bot/chat/completions", json=chat("hi"), headers={"X-Payment-Token": "rpt_anon"})
        unpaid = await client.post("/bot/chat/completions", json=chat("hi"))
    assert paid.status_code == 200 and paid.headers["X-Robutler-Cost"] == "0.5"
    assert unpaid.status_code == 402 and "X-Payment-Token" in unpaid.json()["error"]["message"]


async def test_auth_is_added_when_only_payments_is_configured(payments_settings: dict[str, Any]) -> None:
    config = {"model": "scripted/echo", "skills": {"payments": {**payments_settings, "models": {"*": {}}}}}
    k = make_kernel({"bot": config}, plugins=[scripted, payments, auth])
    async with kernel_client(k) as client:
        info = (await client.get("/bot")).json()
        response = await client.post("/bot/chat/completions", json=chat("hi"))
    assert info["skills"][:2] == ["auth", "payments"]
    assert response.status_code == 401

"""A local handoff with payments on both agents: the same payer is charged by each agent
for its own work, exactly once; the answer reports the chain's cost; the caller's budget
caps the target."""

from __future__ import annotations

from typing import Any

from robutler_kernel.testing import kernel_client
from robutler_plugin_payments.ledger import Ledger

from .support import agent, chat, kernel, micro, user

PRICED = {"scripted/*": {"prompt": 2, "completion": 4}}


def chain(settings: dict[str, Any], **front: Any) -> dict[str, Any]:
    billing = agent(settings, model="scripted/answer", scripts={"answer": [{"content": "Your invoice is paid."}]},
                    request_fee="0.5", models=PRICED, default_reservation=2)
    desk = agent(settings, model="scripted/route", scripts={"route": [{"tool_calls": [{"name": "transfer_to_billing"}]}]},
                 request_fee="0.5", models=PRICED, default_reservation=3, **front)
    desk["handoffs"] = ["billing"]
    return {"front": desk, "billing": billing}


async def test_each_agent_charges_its_own_work_once_and_the_answer_reports_the_chain(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(100))
    k = kernel(chain(payments_settings))
    async with kernel_client(k) as client:
        response = await client.post("/front/chat/completions", json=chat("my invoice?"), headers=user("alice"))
        alone = await client.post("/billing/chat/completions", json=chat("my invoice?"), headers=user("alice"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Your invoice is paid." and body["agent"] == "billing"
    account = await payments_admin.account("alice")
    assert account is not None and account.reserved == 0
    billing_cost = micro(alone.json()["usage"]["cost"])
    front_cost = micro(response.headers["x-robutler-cost"])
    # alice paid: front's own work, billing's own work (as much as billing costs alone), and
    # the second request to billing; nothing twice.
    assert account.spent == front_cost + billing_cost + billing_cost
    assert micro(body["usage"]["cost"]) == front_cost + billing_cost
    assert front_cost >= micro("0.5") and billing_cost >= micro("0.5")


async def test_the_callers_budget_caps_the_target(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    await payments_admin.create_account("alice", micro(100))
    k = kernel(chain(payments_settings))
    async with kernel_client(k) as client:
        # front may spend at most 0.9 on the whole chain: after its own fee (0.5) and its
        # model call, too little is left for billing's minimum (its 0.5 fee): billing
        # refuses before any work, and front's model reads why (with what is left).
        response = await client.post("/front/chat/completions", json=chat("my invoice?"),
                                     headers=user("alice", **{"X-Authorized-Amount": "0.9"}))
    assert response.status_code == 200, response.text
    text = response.json()["choices"][0]["message"]["content"]
    assert "the handoff to billing failed" in text and "X-Authorized-Amount" in text
    account = await payments_admin.account("alice")
    assert account is not None and account.reserved == 0
    assert account.spent <= micro("0.9")  # never more than the first caller authorized

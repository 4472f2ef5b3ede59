"""End to end: the worked example of ``docs/agent-network.md``, as written there.

Two ``robutler-kernel serve`` processes on loopback: the billing server announces its agent
to the hub's registry; the hub's router discovers it, hands the conversation to it over
HTTP (the nli plugin) and pays for it. Both ledgers are checked to the micro-credit, and a
budget too small for the chain is refused by billing before any work.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from robutler_kernel.testing import ServeProcess, closed_port
from robutler_plugin_payments.config import LedgerConfig
from robutler_plugin_payments.ledger import make_ledger

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "agent-network.md"
ALICE = "alice-key-000000000000000000"
QUESTION = {"messages": [{"role": "user", "content": "Was invoice 42 paid?"}]}


def files(directory: Path) -> dict[str, Path]:
    """The doc's ``# file:`` YAML blocks, written into ``directory``."""
    written = {}
    for name, text in re.findall(r"```yaml\n# file: (\S+)\n(.*?)```", DOC.read_text(), re.S):
        path = directory / name
        path.write_text(text)
        written[name] = path
    assert set(written) == {"hub.yaml", "billing.yaml"}
    return written


def cli(*args: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "robutler_kernel.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("network")
    configs = files(directory)
    hub_port, billing_port = closed_port(), closed_port()
    env = {**os.environ, "HUB_PORT": str(hub_port), "BILLING_PORT": str(billing_port), "DATA": str(directory)}
    for name, config in configs.items():
        assert "OK" in cli("check", str(config), env=env, cwd=directory), name
    cli("payments", "account", "create", "alice", "--balance", "10", "-c", str(configs["hub.yaml"]), env=env, cwd=directory)
    cli("payments", "account", "create", "hub", "--balance", "10", "-c", str(configs["billing.yaml"]), env=env, cwd=directory)
    extra = {k: env[k] for k in ("HUB_PORT", "BILLING_PORT", "DATA")}
    with ServeProcess(configs["hub.yaml"], env=extra, cwd=directory, args=["--port", str(hub_port), "--metrics-port", "0"]) as hub, \
         ServeProcess(configs["billing.yaml"], env=extra, cwd=directory,
                      args=["--port", str(billing_port), "--metrics-port", "0"]) as billing:
        # billing announces itself at its start: wait until the registry lists it
        deadline = time.monotonic() + 20
        while True:
            found = httpx.get(f"{hub.url}/agents", params={"search": "invoices"}).json()["data"]
            if any(a["name"] == "billing" for a in found):
                break
            assert time.monotonic() < deadline, f"billing never registered: {found}\n{''.join(billing.output)}"
            time.sleep(0.1)
        yield {"hub": hub.url, "billing": billing.url, "dir": directory, "configs": configs}


def balances(directory: Path, ledger_file: str, account: str) -> tuple[Decimal, Decimal, Decimal]:
    """(available, reserved, spent) of ``account``, in credits."""

    async def read() -> Any:
        ledger = make_ledger(msgspec.convert({"backend": "sqlite", "path": str(directory / ledger_file)}, LedgerConfig))
        await ledger.open()
        try:
            return await ledger.account(account)
        finally:
            await ledger.close()

    found = asyncio.run(read())
    assert found is not None
    return tuple(Decimal(v).scaleb(-6) for v in (found.available, found.reserved, found.spent))  # type: ignore[return-value]


def test_the_router_discovers_hands_off_and_pays(network: dict[str, Any]) -> None:
    before_alice = balances(network["dir"], "hub-ledger.sqlite3", "alice")
    before_hub = balances(network["dir"], "billing-ledger.sqlite3", "hub")
    response = httpx.post(f"{network['hub']}/router/chat/completions", json=QUESTION, timeout=30,
                          headers={"Authorization": f"Bearer {ALICE}", "X-Authorized-Amount": "2"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Invoice 42 was paid on March 3."
    assert body["model"] == "router" and body["agent"] == "billing"
    assert response.headers["x-robutler-agent"] == "billing"
    after_alice = balances(network["dir"], "hub-ledger.sqlite3", "alice")
    after_hub = balances(network["dir"], "billing-ledger.sqlite3", "hub")
    billing_charged = after_hub[2] - before_hub[2]
    alice_charged = after_alice[2] - before_alice[2]
    assert after_alice[1] == 0 and after_hub[1] == 0  # nothing held on either side
    assert billing_charged >= Decimal("0.2")  # billing's fee, at least
    # alice paid the hub's own work (its fee, at least) and billing's charge, once
    assert alice_charged >= Decimal("0.1") + billing_charged
    assert Decimal(str(body["usage"]["cost"])) == alice_charged
    assert Decimal(response.headers["x-robutler-cost"]) == alice_charged
    # both servers' tokens are in the chain's usage
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0


def test_a_budget_too_small_for_the_chain_is_refused_by_billing_before_any_work(network: dict[str, Any]) -> None:
    before_hub = balances(network["dir"], "billing-ledger.sqlite3", "hub")
    before_alice = balances(network["dir"], "hub-ledger.sqlite3", "alice")
    # the hub's own fee and calls leave less than billing's 0.2 fee
    response = httpx.post(f"{network['hub']}/router/chat/completions", json=QUESTION, timeout=30,
                          headers={"Authorization": f"Bearer {ALICE}", "X-Authorized-Amount": "0.25"})
    after_hub = balances(network["dir"], "billing-ledger.sqlite3", "hub")
    after_alice = balances(network["dir"], "hub-ledger.sqlite3", "alice")
    assert after_hub == before_hub  # billing did no work and charged nothing
    assert after_alice[1] == 0 and after_alice[2] - before_alice[2] <= Decimal("0.25")
    if response.status_code == 200:
        text = response.json()["choices"][0]["message"]["content"]
        assert "the handoff to" in text and "failed" in text
        assert "agent" not in response.json()
    else:  # the hub's own reservation ran out first
        assert response.status_code == 402, response.text


def test_a_loop_back_to_the_router_is_refused(network: dict[str, Any]) -> None:
    response = httpx.post(f"{network['billing']}/billing/chat/completions", json=QUESTION, timeout=30,
                          headers={"Authorization": "Bearer hub-key-00000000000000000000", "X-Robutler-Chain": "router,billing"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "handoff_loop"

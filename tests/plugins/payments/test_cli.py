"""``robutler-kernel payments ...``: called directly (both backends) and once as a process."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from robutler_kernel.testing import kernel_client
from robutler_plugin_payments import cli, robutler_commands
from robutler_plugin_payments.ledger import Ledger

from .support import agent, chat, kernel, micro


def run(argv: list[str], settings: dict[str, Any]) -> tuple[int, str, str]:
    """Run the command in a worker thread (it runs its own event loop, as in the CLI)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, settings, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def arun(argv: list[str], settings: dict[str, Any]) -> tuple[int, str, str]:
    return await asyncio.to_thread(run, argv, settings)


def test_the_plugin_adds_the_payments_command() -> None:
    assert robutler_commands() == {"payments": cli.main}


async def test_accounts_topups_balance_and_transactions(payments_settings: dict[str, Any], payments_admin: Ledger) -> None:
    assert await arun(["account", "create", "alice", "--balance", "100"], payments_settings) == (
        0, "created account alice with 100 credits\n", "")
    code, _, err = await arun(["account", "create", "alice"], payments_settings)
    assert code == 1 and "account 'alice' already exists; use topup" in err
    code, out, _ = await arun(["topup", "alice", "2.5", "--note", "thanks"], payments_settings)
    assert code == 0 and out == "alice: +2.5 credits, 102.5 available\n"
    code, _, err = await arun(["topup", "bob", "1"], payments_settings)
    assert code == 1 and "no such account 'bob'" in err and "payments account create" in err
    code, out, _ = await arun(["balance", "alice"], payments_settings)
    assert code == 0 and re.search(r"available\s+102\.5\n\s+reserved\s+0\n\s+spent\s+0", out)
    code, out, _ = await arun(["transactions", "alice", "--limit", "1"], payments_settings)
    assert code == 0 and "topup" in out and "+2.5" in out and "thanks" in out and "opening balance" not in out
    code, _, err = await arun(["balance", "bob"], payments_settings)
    assert code == 1 and "no such account 'bob'" in err
    account = await payments_admin.account("alice")
    assert account is not None and account.available == micro("102.5")


async def test_a_token_is_printed_once_stored_as_a_hash_and_pays(
    payments_settings: dict[str, Any], payments_admin: Ledger
) -> None:
    await payments_admin.create_account("alice", micro(10))
    code, out, _ = await arun(["token", "create", "--balance", "3", "--account", "alice"], payments_settings)
    assert code == 0
    token = re.search(r"X-Payment-Token: (rpt_\S+)", out).group(1)  # type: ignore[union-attr]
    token_id = re.search(r"token account (tok_\w+)", out).group(1)  # type: ignore[union-attr]
    if payments_settings["backend"] == "sqlite":
        assert token.encode() not in Path(payments_settings["path"]).read_bytes()
    code, _, err = await arun(["token", "create", "--balance", "30", "--account", "alice"], payments_settings)
    assert code == 1 and "has 7 credits available, 30 needed" in err
    k = kernel({"bot": agent(payments_settings, request_fee=1)})
    async with kernel_client(k) as client:
        response = await client.post("/bot/chat/completions", json=chat("hi"), headers={"X-Payment-Token": token})
    assert response.status_code == 200
    code, out, _ = await arun(["balance", token_id], payments_settings)
    assert code == 0 and out.startswith(f"token {token_id}, funded by alice") and re.search(r"available\s+2\n", out)


async def test_bad_input_is_exit_2_with_a_clear_message(payments_settings: dict[str, Any]) -> None:
    for argv, message in [
        (["topup", "alice", "lots"], "'lots' is not a number of credits"),
        (["topup", "alice", "1.0000001"], "at most 6 decimal places"),
        (["topup", "alice", "-1"], "non-negative"),
        (["token", "create"], "--balance"),
        (["frobnicate"], "invalid choice"),
    ]:
        code, _, err = await arun(argv, payments_settings)
        assert code == 2 and message in err, (argv, err)
    code, _, err = await arun(["account", "create", "x"], {**payments_settings, "backnd": "postgres"})
    assert code == 2 and "plugins.payments" in err and "backnd" in err
    code, _, err = await arun(["topup", "alice", "0"], payments_settings)
    assert code == 2 and "must be positive" in err


def test_ledger_down_is_exit_1_naming_the_setting() -> None:
    settings = {"backend": "postgres", "dsn": "postgresql://postgres@127.0.0.1:1/test", "timeout": 2}
    code, _, err = run(["balance", "alice"], settings)
    assert code == 1 and "payments ledger (postgres" in err and "plugins.payments.dsn" in err


def test_through_robutler_kernel_as_a_process(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    config = tmp_path / "robutler.yaml"
    config.write_text(f"plugins:\n  payments: {{backend: sqlite, path: '{ledger}'}}\n")

    def kernel_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "robutler_kernel.cli", "payments", "--config", str(config), *args],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )

    created = kernel_cli("account", "create", "alice", "--balance", "5")
    assert created.returncode == 0, created.stderr
    assert created.stdout == "created account alice with 5 credits\n"
    balance = kernel_cli("balance", "alice")
    assert balance.returncode == 0 and "available  5" in balance.stdout
    missing = kernel_cli("topup", "nobody", "1")
    assert missing.returncode == 1 and "no such account 'nobody'" in missing.stderr
    assert ledger.exists()

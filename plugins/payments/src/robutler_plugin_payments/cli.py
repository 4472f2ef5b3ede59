"""``robutler-kernel payments ...``: accounts, tokens, top-ups, balances, transactions.

The kernel calls :func:`main` with the arguments after ``payments`` and the
``plugins.payments`` section of ``--config`` (the ledger settings). Exit codes: 0 done,
1 the operation failed (no such account, not enough credits, ledger down), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import secrets
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TextIO

import msgspec

from robutler_specs import ServiceUnavailable

from .config import LedgerConfig
from .ledger import (
    Account,
    AccountExists,
    AccountNotFound,
    InsufficientCredits,
    Ledger,
    LedgerError,
    hash_token,
    make_ledger,
)
from .money import format_credits, to_micro

TOKEN_PREFIX = "rpt_"


class UsageError(Exception):
    """Bad arguments (exit code 2)."""


def credits(text: str) -> int:
    """A positive-or-zero amount of credits with at most 6 decimals, as micro-credits."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of credits (like 10 or 2.5)") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: credits must be a non-negative number")
    micro = to_micro(value)
    if Decimal(micro).scaleb(-6) != value:
        raise argparse.ArgumentTypeError(f"{text!r}: credits have at most 6 decimal places")
    return micro


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would sys.exit(2); the kernel wants a code
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``robutler-kernel payments``."""
    parser = _Parser(
        prog="robutler-kernel payments",
        description="Manage the payments ledger (the plugins.payments section of --config says where it is: "
        "backend, path or dsn, schema).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    account = sub.add_parser("account", help="create a user account")
    account_sub = account.add_subparsers(dest="action", required=True, parser_class=_Parser)
    create = account_sub.add_parser("create", help="create an account (its id is the user id auth reports)")
    create.add_argument("account", help="account id (the user id)")
    create.add_argument("--balance", type=credits, default=0, help="opening balance in credits (default 0)")

    topup = sub.add_parser("topup", help="add credits to an account or a token")
    topup.add_argument("account", help="account id (or a token's tok_... id)")
    topup.add_argument("amount", type=credits, help="credits to add")
    topup.add_argument("--note", help="a note stored with the transaction")

    token = sub.add_parser("token", help="create a prepaid payment token (X-Payment-Token)")
    token_sub = token.add_subparsers(dest="action", required=True, parser_class=_Parser)
    token_create = token_sub.add_parser("create", help="create a token; it is printed once, only its hash is kept")
    token_create.add_argument("--balance", type=credits, required=True, help="the token's credits")
    token_create.add_argument("--account", help="fund the token from this account (else the credits are new)")

    balance = sub.add_parser("balance", help="show an account's balance")
    balance.add_argument("account")

    transactions = sub.add_parser("transactions", help="show an account's newest transactions")
    transactions.add_argument("account")
    transactions.add_argument("--limit", type=int, default=20, help="how many (default 20)")

    sub.add_parser("sweep", help="release expired reservations of every account")
    return parser


def _print_account(account: Account, out: TextIO) -> None:
    owner = f", funded by {account.owner}" if account.owner else ""
    print(f"{account.kind} {account.id}{owner}", file=out)
    print(f"  available  {format_credits(account.available)}", file=out)
    print(f"  reserved   {format_credits(account.reserved)}", file=out)
    print(f"  spent      {format_credits(account.spent)}", file=out)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _run(args: argparse.Namespace, ledger: Ledger, out: TextIO) -> int:
    if args.command == "account":
        account = await ledger.create_account(args.account, args.balance)
        print(f"created account {account.id} with {format_credits(account.available)} credits", file=out)
    elif args.command == "topup":
        if args.amount <= 0:
            raise UsageError("the amount to top up must be positive")
        account = await ledger.topup(args.account, args.amount, args.note)
        print(f"{account.id}: +{format_credits(args.amount)} credits, {format_credits(account.available)} available",
              file=out)
    elif args.command == "token":
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        token_id = "tok_" + secrets.token_hex(6)
        account = await ledger.create_token(token_id, hash_token(token), args.balance, owner=args.account)
        funded = f"from account {args.account}" if args.account else "new credits"
        print(f"payment token (shown once; only its hash is stored): {token}", file=out)
        print(f"token account {account.id}: {format_credits(account.available)} credits ({funded})", file=out)
        print(f"send it as: X-Payment-Token: {token}", file=out)
    elif args.command == "balance":
        await ledger.expire(args.account)
        found = await ledger.account(args.account)
        if found is None:
            raise LedgerError(f"no such account {args.account!r}")
        _print_account(found, out)
    elif args.command == "transactions":
        if args.limit < 1:
            raise UsageError("--limit must be at least 1")
        if await ledger.account(args.account) is None:
            raise LedgerError(f"no such account {args.account!r}")
        rows = await ledger.transactions(args.account, args.limit)
        if not rows:
            print(f"{args.account}: no transactions", file=out)
        else:
            print(f"{'ID':>6}  {'TIME (UTC)':<19}  {'KIND':<12}  {'CREDITS':>12}  {'REQUEST':<24}  DETAIL", file=out)
        for t in rows:
            amount = format_credits(t.amount)
            amount = amount if amount.startswith("-") else "+" + amount
            detail = (t.detail or "")[:80]
            print(f"{t.id:>6}  {_when(t.created_at)}  {t.kind:<12}  {amount:>12}  {t.request_id or '-':<24}  {detail}",
                  file=out)
    elif args.command == "sweep":
        freed = await ledger.expire()
        print(f"released {format_credits(freed)} credits of expired reservations", file=out)
    return 0


def _hint(exc: LedgerError) -> str:
    if isinstance(exc, AccountNotFound):
        return f"{exc}; create it with: robutler-kernel payments account create <id> --balance <credits>"
    if isinstance(exc, InsufficientCredits):
        return (f"account {exc.account_id!r} has {format_credits(exc.available)} credits available, "
                f"{format_credits(exc.needed)} needed; top it up first")
    if isinstance(exc, AccountExists):
        return f"{exc}; use topup to add credits"
    return str(exc)


def main(
    argv: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    ledger_factory: Callable[[LedgerConfig], Ledger] = make_ledger,
) -> int:
    """Manage the payments ledger: accounts, tokens, top-ups, balances, transactions.

    Runs one ``robutler-kernel payments ...`` command; returns the exit code.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(list(argv))
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        config = msgspec.convert(dict(settings or {}), LedgerConfig, strict=False)
    except msgspec.ValidationError as exc:
        print(f"error: plugins.payments: {exc}", file=err)
        return 2

    async def run() -> int:
        ledger = ledger_factory(config)
        try:
            await ledger.open()
            return await _run(args, ledger, out)
        finally:
            await ledger.close()

    return _guard(run, err)


def _guard(run: Callable[[], Coroutine[Any, Any, int]], err: TextIO) -> int:
    try:
        return asyncio.run(run())
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except LedgerError as exc:
        print(f"error: {_hint(exc)}", file=err)
        return 1
    except ServiceUnavailable as exc:
        print(f"error: {exc.message}", file=err)
        return 1


__all__ = ["build_parser", "credits", "main"]

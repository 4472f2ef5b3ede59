"""What auth + payments cost per request: ``python -m bench.targets_payments``.

The bench harness (:func:`bench.runner.run`) loads, in one run and alternating, agents on
the offline ``scripted/echo`` model (no upstream: the kernel's cost only, so the relative
overhead is the worst case) that differ only in their skills:

- ``robutler-scripted`` (the harness's target): no auth, no payments, the baseline;
- ``auth-only``: the auth skill with one API key (the load generator sends
  ``Authorization: Bearer bench``), to separate what auth costs from what payments costs;
- ``auth-payments-sqlite`` and ``auth-payments-postgres``: auth plus payments, charging the
  ``bench`` account (seeded with 10 million credits before the servers start) a request fee
  and token prices: every request reserves, and settles with a ``charge`` transaction.

The targets live here rather than in ``bench/targets.py`` so the harness stays
plugin-agnostic. The PostgreSQL target uses ``$ROBUTLER_BENCH_PG_DSN`` (default the local
test database) in a schema of its own, dropped at the end; the SQLite file is removed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .targets import AGENT, TARGETS, Target, at_revision

PG_DSN = os.environ.get("ROBUTLER_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
#: The key the load generator sends (``bench/load.py``) and the account it pays from.
LOAD_KEY = "bench"
ACCOUNT = "bench"
SEED_CREDITS = 10_000_000
PRICES = {
    "request_fee": "0.001",
    "models": {"scripted/*": {"prompt": "0.5", "completion": "1.5"}},
    "markup": "0.1",
    "default_reservation": 1,
}

#: Per-run resources (a temporary directory, PostgreSQL schemas), made on first use.
_RUN: dict[str, str] = {}
#: The ledgers the run made: (label, backend) -> settings. A target run on another checkout
#: (``--baseline-src``) gets its own, labelled with its name.
_LEDGERS: dict[tuple[str, str], dict[str, Any]] = {}


def run_dir() -> Path:
    """A temporary directory for this run's ledger files."""
    if "dir" not in _RUN:
        _RUN["dir"] = tempfile.mkdtemp(prefix="robutler-bench-payments-")
    return Path(_RUN["dir"])


def pg_schema(label: str = "") -> str:
    """This run's PostgreSQL schema for ``label`` (created by the ledger, dropped by :func:`cleanup`)."""
    base = _RUN.setdefault("schema", f"bench_payments_{uuid.uuid4().hex[:8]}")
    return base + (f"_{uuid.uuid5(uuid.NAMESPACE_OID, label).hex[:6]}" if label else "")


def ledger_settings(backend: str, label: str = "") -> dict[str, Any]:
    """Where each target's ledger is."""
    if (label, backend) not in _LEDGERS:
        if backend == "sqlite":
            name = f"payments-{uuid.uuid5(uuid.NAMESPACE_OID, label).hex[:6]}" if label else "payments"
            _LEDGERS[label, backend] = {"backend": "sqlite", "path": str(run_dir() / f"{name}.sqlite3")}
        else:
            _LEDGERS[label, backend] = {"backend": "postgres", "dsn": PG_DSN, "schema": pg_schema(label)}
    return _LEDGERS[label, backend]


def seed(settings: dict[str, Any]) -> None:
    """Give the bench account its credits, through the plugin's own ledger code."""
    import msgspec

    from robutler_plugin_payments import LedgerConfig, make_ledger
    from robutler_plugin_payments.ledger import AccountExists

    ledger = make_ledger(msgspec.convert(settings, LedgerConfig))

    async def fill() -> None:
        await ledger.open()
        try:
            await ledger.create_account(ACCOUNT, SEED_CREDITS * 1_000_000)
        except AccountExists:
            await ledger.topup(ACCOUNT, SEED_CREDITS * 1_000_000)
        finally:
            await ledger.close()

    asyncio.run(fill())


def _auth() -> dict[str, Any]:
    from robutler_plugin_auth import hash_key

    return {"api_keys": [{"key_hash": hash_key(LOAD_KEY), "user_id": ACCOUNT}]}


def auth_only(upstream: str) -> dict[str, Any]:
    """scripted/echo with the auth skill and one key."""
    return {"agents": {AGENT: {"model": "scripted/echo", "skills": {"auth": _auth()}}}}


def auth_payments(backend: str, label: str = "") -> Callable[[str], dict[str, Any]]:
    """A config builder: auth plus payments on ``backend``, the account seeded (a ledger per
    ``label``)."""

    def build(upstream: str) -> dict[str, Any]:
        settings = ledger_settings(backend, label)
        seed(settings)
        skills = {"auth": _auth(), "payments": {**settings, **PRICES}}
        return {"agents": {AGENT: {"model": "scripted/echo", "skills": skills}}}

    return build


NEEDS = ("robutler_plugin_scripted", "robutler_plugin_auth", "robutler_plugin_payments")

PAYMENTS_TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("auth-only", "robutler", "scripted/echo + auth (one API key)", config=auth_only,
               baseline="robutler-scripted", needs=NEEDS[:2], uses_upstream=False),
        Target("auth-payments-sqlite", "robutler", "scripted/echo + auth + payments, SQLite ledger",
               config=auth_payments("sqlite"), baseline="robutler-scripted", needs=NEEDS, uses_upstream=False),
        Target("auth-payments-postgres", "robutler", "scripted/echo + auth + payments, PostgreSQL ledger",
               config=auth_payments("postgres"), baseline="robutler-scripted", needs=(*NEEDS, "asyncpg"),
               uses_upstream=False),
    ]
}


def cleanup() -> None:
    """Drop this run's schemas and remove its files."""
    schemas = [v["schema"] for (_, backend), v in _LEDGERS.items() if backend == "postgres"]
    _LEDGERS.clear()
    _RUN.pop("schema", None)
    if schemas:
        import asyncpg

        async def drop() -> None:
            conn = await asyncpg.connect(PG_DSN, timeout=10)
            try:
                for schema in schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

        asyncio.run(drop())
    directory = _RUN.pop("dir", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def ledger_totals() -> list[list[Any]]:
    """Per backend: charges written and credits spent by the bench account (a check that
    every successful request was charged once)."""
    import msgspec

    from robutler_plugin_payments import LedgerConfig, make_ledger
    from robutler_plugin_payments.money import format_credits

    rows: list[list[Any]] = []
    for (label, backend), settings in sorted(_LEDGERS.items()):
        ledger = make_ledger(msgspec.convert(settings, LedgerConfig))

        async def read(ledger: Any = ledger) -> tuple[int, int, int]:
            await ledger.open()
            try:
                account = await ledger.account(ACCOUNT)
                charges = await ledger.transactions(ACCOUNT, 10_000_000)
                return account.spent, account.reserved, sum(1 for t in charges if t.kind == "charge")
            finally:
                await ledger.close()

        spent, reserved, charges = asyncio.run(read())
        rows.append([label or backend, charges, format_credits(spent), format_credits(reserved)])
    return rows


def run_targets(args: argparse.Namespace) -> str:
    """Run the chosen targets and the baseline through the harness; the report."""
    from . import report
    from .procs import cpu_plan
    from .runner import Settings, run

    everything = {**TARGETS, **PAYMENTS_TARGETS}
    unknown = [n for n in args.targets if n not in PAYMENTS_TARGETS]
    if unknown:
        raise SystemExit(f"error: unknown target(s) {', '.join(unknown)}; known: {', '.join(PAYMENTS_TARGETS)}")
    targets = [PAYMENTS_TARGETS[n] for n in args.targets]
    if args.baseline_src:
        # Only the payments targets: the no-payments baseline is the same on both sides.
        # (auth-only too is the same on both sides.) Each @base target gets a ledger of its own.
        paying = [t for t in targets if t.name != "auth-only"]
        based = {t.name: t for t in at_revision(paying, str(Path(args.baseline_src).resolve()))}
        targets = [t for t in targets if t.name == "auth-only"] + [
            replace(t, config=auth_payments(t.name.split("-")[-1].split("@")[0], t.name)) if t.name.endswith("@base")
            else t for t in based.values()]
        everything.update({t.name: t for t in targets})
    targets.append(TARGETS["robutler-scripted"])
    missing = sorted({m for t in targets for m in t.missing()})
    if missing:
        raise SystemExit(f"error: install {', '.join(missing)} (pip install -e plugins/...)")
    settings = Settings(targets=targets, scenarios=args.scenarios, concurrency=args.concurrency,
                        duration=args.duration, warmup=args.warmup, rounds=args.rounds, plan=cpu_plan(True),
                        profile_dir=args.profile)
    if args.quick:
        settings.duration, settings.warmup, settings.rounds, settings.prime = 0.5, 0.2, 1, 0.3
    rows = run(settings, lambda line: print(line, file=sys.stderr, flush=True))
    compared = {(c["target"], c["scenario"], c["concurrency"]): c for c in report.comparisons(rows, everything)}
    headers = ["scenario", "conc", "target", "req/s", "vs none", "p50 ms", "+p50 ms", "p99 ms", "srv us/req", "errors"]
    table = []
    for r in rows:
        c = compared.get((r["target"], r["scenario"], r["concurrency"]))
        ratio = f"{100 * c['throughput_ratio']:.0f}%" if c and c["throughput_ratio"] is not None else "base"
        added = round(c["added_p50_ms"], 3) if c and c["added_p50_ms"] is not None else ""
        table.append([r["scenario"], r["concurrency"], r["target"], r["rps"], ratio, r["p50_ms"], added,
                      r["p99_ms"], report.cpu_per_request(r), r["errors"]])
    out = report.format_table(headers, table)
    if args.markdown:
        out += "\n\n" + report.markdown_table(headers, table)
    totals = ledger_totals()
    if totals:
        out += "\n\nledger after the run (bench account):\n"
        out += report.format_table(["ledger", "charges", "credits spent", "still reserved"], totals)
    descriptions = "\n".join(f"  {t.name}: {t.description}" for t in targets)
    return out + "\n\ntargets:\n" + descriptions


def main(argv: list[str] | None = None) -> int:
    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",") if v.strip()]

    names = list(PAYMENTS_TARGETS)
    parser = argparse.ArgumentParser(prog="python -m bench.targets_payments", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--targets", type=lambda s: [v for v in s.split(",") if v], default=names,
                        help=f"of {', '.join(names)} (default all; the baseline robutler-scripted is added)")
    parser.add_argument("--quick", action="store_true", help="short runs (0.5 s, one round)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=ints, default=[1, 64])
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=["json", "stream"])
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="also run each payments target on the sources of another checkout "
                             "(git worktree add DIR <revision>), as <target>@base, in the same run")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy profiles of the servers into DIR (summary: python -m bench.profile FILE)")
    args = parser.parse_args(argv)
    try:
        print(run_targets(args))
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

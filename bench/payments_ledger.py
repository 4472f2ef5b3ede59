"""The payments ledger alone: CPU and wall time per request (one reservation and one
settlement), ``python -m bench.payments_ledger``.

No server, no HTTP: ``--pairs`` reservations and settlements on one account, from
``--concurrency`` tasks of one process pinned to one core, on SQLite and on PostgreSQL
(``$ROBUTLER_BENCH_PG_DSN``, default the local test database, in a schema of its own,
dropped after). ``--baseline-src DIR`` also runs it on the sources of another checkout
(``git worktree add DIR <revision>``), alternating, for before and after side by side.
CPU is the process's (the SQLite worker thread included); PostgreSQL's own is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from .procs import python_env
from .targets_payments import PG_DSN


async def _measure(backend: str, pairs: int, concurrency: int) -> dict[str, float]:
    from robutler_plugin_payments.ledger import AccountRef, SQLiteLedger
    from robutler_plugin_payments.ledger.postgres import PostgresLedger

    directory = tempfile.mkdtemp(prefix="robutler-bench-ledger-")
    ledger: SQLiteLedger | PostgresLedger
    if backend == "sqlite":
        ledger = SQLiteLedger(os.path.join(directory, "ledger.sqlite3"))
    else:
        ledger = PostgresLedger(PG_DSN, schema=f"bench_ledger_{uuid.uuid4().hex[:8]}")
    await ledger.open()
    try:
        await ledger.create_account("bench", 10**15)
        ref = AccountRef(account_id="bench")

        async def worker(w: int, n: int) -> None:
            for i in range(n):
                await ledger.reserve(ref, f"{w}-{i}", 10**6, 1000, 900, agent="bench")
                await ledger.settle(f"{w}-{i}", 12345, '{"fee": 0.001}')

        await asyncio.gather(*(worker(-1 - w, 20) for w in range(concurrency)))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(w, pairs // concurrency) for w in range(concurrency)))
        done = pairs // concurrency * concurrency
        return {"cpu_us": 1e6 * (time.process_time() - cpu) / done, "wall_us": 1e6 * (time.perf_counter() - wall) / done}
    finally:
        if isinstance(ledger, PostgresLedger):
            await ledger.drop_schema()
        await ledger.close()


def _one(src: str | None, backend: str, pairs: int, concurrency: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.payments_ledger", "--child", backend, "--pairs", str(pairs),
            "--concurrency", str(concurrency)]
    out = subprocess.run(argv, env=python_env(src), capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payments_ledger", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--concurrency", type=lambda s: [int(v) for v in s.split(",")], default=[1, 64])
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-src", metavar="DIR")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {0})  # this process and the threads it starts: one core
        print(json.dumps(asyncio.run(_measure(args.child, args.pairs, args.concurrency[0]))))
        return 0
    sides: list[tuple[str, str | None]] = [("this", None)]
    if args.baseline_src:
        sides.append(("base", os.path.abspath(args.baseline_src)))
    print("backend   conc  sources  cpu us/request  wall us/request")
    for backend in args.backends:
        for concurrency in args.concurrency:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
            for _ in range(args.rounds):
                for name, src in sides:
                    runs[name].append(_one(src, backend, args.pairs, concurrency))
            for name, _ in sides:
                cpu = sorted(r["cpu_us"] for r in runs[name])[len(runs[name]) // 2]
                wall = sorted(r["wall_us"] for r in runs[name])[len(runs[name]) // 2]
                print(f"{backend:9s} {concurrency:4d}  {name:7s}  {cpu:14.0f}  {wall:15.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench``: the options, the run, the table and the JSON file."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import procs, report
from .procs import cpu_plan, machine_busy, wait_idle
from .runner import Settings, run
from .targets import DEFAULT_TARGETS, SCENARIOS, TARGETS, at_revision, select


def _list(kind: type, choices: Sequence[str] | None = None) -> Any:
    def parse(text: str) -> list[Any]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        bad = [v for v in values if choices is not None and v not in choices]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices or ['numbers'])}")
        return values
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the Robutler server against a bare Starlette-on-Hypercorn pass-through proxy "
                    "of a zero-latency fake OpenAI upstream (see docs/benchmarks.md).",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of each timed run (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up before each timed run (default 0.5)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per compared target and cell, alternating (default 2)")
    parser.add_argument("--concurrency", type=_list(int), default=[1, 64], help="workers, e.g. 1,64 (default)")
    parser.add_argument("--scenarios", type=_list(str, list(SCENARIOS)), default=list(SCENARIOS), help="json,stream (default)")
    parser.add_argument("--targets", type=_list(str, list(TARGETS)), default=list(DEFAULT_TARGETS),
                        help=f"of {', '.join(TARGETS)} (default {','.join(DEFAULT_TARGETS)}; baselines are added)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap of requests per timed run")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (0.5 s runs, one round)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to cores")
    parser.add_argument("--nice", type=int, default=0,
                        help="nice value of the benchmark's processes; e.g. -10 (root) keeps other "
                             "work on a shared machine from distorting the figures")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for other processes to leave the CPUs idle")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown too")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record each compared target's first run per cell with py-spy into DIR "
                             "(summary: python -m bench.profile FILE)")
    parser.add_argument("--log-dir", type=Path, help="server logs and configs (default: a temporary directory)")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="also run each Robutler target on the sources of another checkout "
                             "(git worktree add DIR <revision>), as <target>@base, in the same run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        targets = select(args.targets)
        if args.baseline_src:
            targets = at_revision(targets, str(Path(args.baseline_src).resolve()))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = {t.name: t.missing() for t in targets if t.missing()}
    if missing:
        for name, modules in missing.items():
            print(f"error: target {name} needs {', '.join(modules)} (pip install -e plugins/...); "
                  f"or pick others with --targets (e.g. robutler-scripted)", file=sys.stderr)
        return 2
    settings = Settings(targets=targets, scenarios=args.scenarios, concurrency=args.concurrency,
                        duration=args.duration, warmup=args.warmup, rounds=args.rounds,
                        max_requests=args.max_requests, plan=cpu_plan(args.pin), log_dir=args.log_dir,
                        profile_dir=args.profile)
    if args.quick:
        settings.duration, settings.warmup, settings.rounds, settings.prime = 0.5, 0.2, 1, 0.3
    # SIGTERM ends the run like Ctrl-C: the process groups are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    procs.NICE = args.nice
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        busy = wait_idle(report.BUSY_WARNING_PCT, args.wait_idle, progress) if args.wait_idle else machine_busy(0.5)
        progress(f"before the run, other processes used {busy:.0f}% of a core")
        started = time.monotonic()
        rows = run(settings, progress)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.render(rows))
    if args.markdown:
        print("\n" + report.markdown_table(report.COLUMNS, report.table_rows(rows)))
    print(f"\n{settings.plan.describe()}; total {time.monotonic() - started:.0f} s")
    if args.json:
        doc = {
            "machine": report.machine(),
            "settings": {"duration": settings.duration, "warmup": settings.warmup, "rounds": settings.rounds,
                         "concurrency": settings.concurrency, "scenarios": settings.scenarios,
                         "targets": {t.name: t.description for t in targets},
                         "pinning": settings.plan.describe(), "busy_before_pct": round(busy, 1), "nice": args.nice},
            "targets": {"throughput_ratio": report.THROUGHPUT_RATIO_TARGET, "added_p50_ms": report.ADDED_P50_TARGET_MS},
            "results": rows,
            "comparisons": report.comparisons(rows),
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0

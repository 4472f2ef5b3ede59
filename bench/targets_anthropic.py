"""What the anthropic plugin costs next to the openai one: ``python -m bench.targets_anthropic``.

Two Robutler targets in the same run, each behind ``robutler-kernel serve``, each through its
provider's official SDK, each against its own zero-latency fake upstream:

* ``robutler-sdk`` (from ``bench/targets.py``): an agent on ``openai/fake-model`` through
  the openai SDK (``transport: sdk``) against ``python -m robutler_kernel.testing.fake_openai``;
* ``robutler-anthropic``: an agent on ``anthropic/fake-model`` against
  ``python -m robutler_kernel.testing.fake_anthropic`` (Messages API JSON, and event
  streams: 15 events for the ten-word answer, translated into OpenAI chunks).

The harness (:func:`bench.runner.run`) alternates them round by round in every cell (JSON and
stream, concurrency 1 and 64); ``robutler-sdk`` is ``robutler-anthropic``'s baseline, so the
ratio printed is anthropic / openai. The issue's target: the anthropic path keeps at least
80% of the openai path's throughput (:data:`RATIO_TARGET`).

The fake Anthropic upstream is started here (pinned like the fake OpenAI upstream); the
``ups cpu%`` column of the harness watches the OpenAI one only, so it is left out below.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from .targets import AGENT, TARGETS, Target

#: anthropic req/s / openai req/s below this misses the issue's target (at most 20% less).
RATIO_TARGET = 0.80

#: The key the fake Anthropic upstream is started with (and the agent sends).
KEY = "bench-key"

NAME = "robutler-anthropic"


def anthropic_agent(base_url: str) -> dict[str, Any]:
    """One agent on the anthropic plugin, pointed at the fake Anthropic upstream."""
    return {
        "agents": {
            AGENT: {
                "model": "anthropic/fake-model",
                "skills": {"anthropic": {"base_url": base_url, "api_key": KEY}},
            }
        }
    }


#: The openai path through its SDK: like for like with the anthropic plugin's SDK path.
BASE = "robutler-sdk"


def anthropic_target(base_url: str) -> Target:
    """The ``robutler-anthropic`` target, its agent pointed at ``base_url`` (the harness's
    own upstream argument is the OpenAI fake's, which this target does not use)."""
    return Target(
        NAME,
        "robutler",
        "robutler-kernel serve, one agent on anthropic/fake-model (robutler-plugin-anthropic) "
        "against the fake Anthropic upstream",
        config=lambda _openai_upstream: anthropic_agent(base_url),
        baseline=BASE,
        needs=("robutler_plugin_anthropic", "robutler_plugin_openai"),
    )


def start_upstream(procs: Any, plan: Any, log_dir: Path) -> str:
    """Start ``python -m robutler_kernel.testing.fake_anthropic`` on a free port (pinned with
    the other upstream); returns its base URL once it answers."""
    from . import procs as P

    port = P.free_port()
    proc = procs.start(P.Proc("anthropic-upstream",
                              ["-m", "robutler_kernel.testing.fake_anthropic", "--port", str(port)],
                              log_dir, plan.upstream))
    base_url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{base_url}/v1/models")  # a 401 without a key: it is up
    return base_url


def report(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table and one ratio line per cell."""
    from .report import cpu_per_request, format_table

    index = {(r["scenario"], r["concurrency"], r["target"]): r for r in rows}
    table, lines = [], []
    for scenario, concurrency in dict.fromkeys((r["scenario"], r["concurrency"]) for r in rows):
        openai_row, anthropic_row = index.get((scenario, concurrency, BASE)), index.get((scenario, concurrency, NAME))
        if openai_row is None or anthropic_row is None:
            continue
        ratio = anthropic_row["rps"] / openai_row["rps"] if openai_row["rps"] else None
        cost, base = cpu_per_request(anthropic_row), cpu_per_request(openai_row)
        table.append([scenario, concurrency, openai_row["rps"], anthropic_row["rps"],
                      None if ratio is None else f"{100 * ratio:.0f}%",
                      openai_row["p50_ms"], anthropic_row["p50_ms"], base, cost,
                      openai_row["errors"] + anthropic_row["errors"]])
        verdict = "-" if ratio is None else ("met" if ratio >= RATIO_TARGET else "MISSED")
        lines.append(f"{scenario:<6} c={concurrency:<3} anthropic/openai throughput "
                     + ("-" if ratio is None else f"{100 * ratio:.1f}%")
                     + f" (target >= {100 * RATIO_TARGET:.0f}%: {verdict})"
                     + (f", server CPU per request {cost / base:.2f}x" if cost and base else ""))
    headers = ["scenario", "conc", "openai req/s", "anthropic req/s", "ratio", "openai p50 ms",
               "anthropic p50 ms", "openai us/req", "anthropic us/req", "errors"]
    return format_table(headers, table) + "\n\n" + "\n".join(lines)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start the fake Anthropic upstream, then run the harness on both targets."""
    from . import procs as P
    from .runner import Settings
    from .runner import run as run_harness

    plan = P.cpu_plan(args.pin)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="robutler-bench-anthropic-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    with P.ProcessSet() as procs:
        base_url = start_upstream(procs, plan, log_dir)
        targets = [anthropic_target(base_url), TARGETS[BASE]]
        missing = [m for t in targets for m in t.missing()]
        if missing:
            raise SystemExit(f"error: install {', '.join(sorted(set(missing)))} (pip install -e plugins/...)")
        settings = Settings(targets=targets, scenarios=args.scenarios, concurrency=args.concurrency,
                            duration=args.duration, warmup=args.warmup, rounds=args.rounds, plan=plan,
                            log_dir=log_dir, profile_dir=args.profile)
        if args.quick:
            settings.duration, settings.warmup, settings.rounds, settings.prime = 0.5, 0.2, 1, 0.3
        return run_harness(settings, lambda line: print(line, file=sys.stderr, flush=True))


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.targets_anthropic",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke run)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of each timed run (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2, help="runs per target and cell, alternating (default 2)")
    parser.add_argument("--concurrency", type=_ints, default=[1, 64])
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=["json", "stream"])
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to cores")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy profiles of both servers into DIR")
    parser.add_argument("--log-dir", type=Path, help="server logs and configs (default: a temporary directory)")
    args = parser.parse_args(argv)
    rows = run(args)
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

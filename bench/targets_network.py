"""What a handoff costs: ``python -m bench network`` (``tox -e bench -- network``).

Three agents on the offline ``scripted`` model, so that only the kernel's work is timed:

* ``direct``: the target agent answering the client itself (one LLM call);
* ``tool``: an agent that calls one of its own tools, then answers (two LLM calls and a
  tool): the request a handoff replaces, the same amount of model work without one;
* ``handoff``: an agent that hands the conversation to the target, which answers (two LLM
  calls, one in each agent's own turn);
* ``nli-local``: an agent that asks the target (``ask_agent``, in-process), then answers
  with what it said (three LLM calls, two turns);
* ``nli-http``: the same, the target on another server (``robutler-kernel serve`` in its
  own process, over loopback HTTP): the CPU timed is the calling server's only.

Part 1 times each in-process (CPU microseconds per request, the median of batches,
alternating the agents batch by batch); part 2 (unless ``--no-load``) serves them with
``robutler-kernel serve`` and loads them over HTTP through the bench harness, the handoff
compared with the tool request in the same run. The target: a local handoff adds under 10%
CPU to the request it replaces (``handoff`` / ``tool`` < 1.10).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .targets import AGENT, TARGETS, Target, chat_body

#: The handoff may add this share of CPU to the request it replaces.
HANDOFF_CPU_TARGET = 0.10


async def noop() -> str:
    """A tool that does nothing (the ``tool`` agent's; async: a sync tool would add a thread hop)."""
    return "done"


def _scripted(script: list[dict[str, Any]]) -> dict[str, Any]:
    return {"scripted": {"scripts": {"s": {"turns": script, "repeat": True}}}}


ANSWER = [{"content": "Your invoice is paid, thank you for asking."}]
TARGET = {"model": "scripted/s", "description": "Answers billing questions", "skills": _scripted(ANSWER)}


def _asking(target: str) -> dict[str, Any]:
    nli = {"allow_hosts": ["127.0.0.1"], "allow_private": True}
    ask = {"tool_calls": [{"name": "ask_agent", "arguments": {"agent": target, "message": "billing question"}}]}
    script = [ask, {"content": "Billing says your invoice is paid."}]
    return {"model": "scripted/s", "skills": {**_scripted(script), "nli": nli}}


def agents(remote: str | None = None) -> dict[str, dict[str, Any]]:
    """The agents (``direct`` is the target itself); with ``remote``, the URL of the target
    on another server, ``nli-http`` asks it there."""
    more = {"nli-local": _asking("direct")}
    if remote is not None:
        more["nli-http"] = _asking(remote)
    return {**more,
        "direct": TARGET,
        "tool": {
            "model": "scripted/s", "tools": ["bench.targets_network:noop"],
            "skills": _scripted([{"tool_calls": [{"name": "noop"}]}, *ANSWER]),
        },
        "handoff": {
            "model": "scripted/s", "handoffs": ["direct"],
            "skills": _scripted([{"tool_calls": [{"name": "transfer_to_direct"}]}]),
        },
    }


# -- in-process ------------------------------------------------------------------------------


async def micro(seconds: float, remote: str | None) -> list[list[Any]]:
    """Rows: agent, CPU us/request (median of batches), requests timed, ratios to ``direct``
    and to ``tool``."""
    import robutler_plugin_nli
    import robutler_plugin_scripted
    from robutler_kernel.testing import make_kernel

    kernel = make_kernel(agents(remote), plugins=[robutler_plugin_scripted, robutler_plugin_nli])
    await kernel.startup()
    messages = [{"role": "user", "content": "I have a billing question"}]
    runners: dict[str, Callable[[], Awaitable[Any]]] = {}
    names = ["direct", "tool", "handoff", "nli-local"] + (["nli-http"] if remote else [])
    for name in names:
        agent = kernel.agent(name)
        assert agent is not None
        runners[name] = lambda agent=agent: agent.run(messages)
    try:
        for run in runners.values():  # warm-up
            for _ in range(200):
                await run()
        batches: dict[str, list[float]] = {name: [] for name in runners}
        deadline = time.perf_counter() + seconds * len(runners)
        while time.perf_counter() < deadline or len(batches["handoff"]) < 7:
            for name, run in runners.items():
                started = time.process_time()
                for _ in range(100):
                    await run()
                batches[name].append((time.process_time() - started) / 100 * 1e6)
    finally:
        await kernel.shutdown()
    medians = {name: statistics.median(b) for name, b in batches.items()}
    return [
        [name, medians[name], 100 * len(b), medians[name] / medians["direct"], medians[name] / medians["tool"]]
        for name, b in batches.items()
    ]


def _remote_target(directory: str) -> Any:
    """The ``direct`` agent served by ``robutler-kernel serve`` in its own process."""
    from pathlib import Path

    from robutler_kernel.testing import ServeProcess

    from .targets import to_yaml

    config = Path(directory) / "remote.yaml"
    config.write_text(to_yaml({"server": {"host": "127.0.0.1", "port": 0, "metrics_port": None},
                               "agents": {"direct": TARGET}}))
    return ServeProcess(config, plugins=["scripted"])


# -- under load --------------------------------------------------------------------------------


def _config(name: str) -> Callable[[str], dict[str, Any]]:
    def build(upstream: str) -> dict[str, Any]:
        every = agents()
        config = {AGENT: every[name]}
        if name == "handoff":
            config["direct"] = every["direct"]
            config[AGENT] = {**every["handoff"], "handoffs": ["direct"]}
        return {"agents": config}

    return build


NETWORK_TARGETS: dict[str, Target] = {
    "net-tool": Target(
        "net-tool", "robutler", "an agent that calls its own tool, then answers (scripted)",
        config=_config("tool"), needs=("robutler_plugin_scripted",), uses_upstream=False,
    ),
    "net-handoff": Target(
        "net-handoff", "robutler", "an agent that hands off to another, which answers (scripted)",
        config=_config("handoff"), baseline="net-tool", needs=("robutler_plugin_scripted",), uses_upstream=False,
        body=chat_body,
    ),
}


def load(args: argparse.Namespace) -> str:
    """Run the harness on the tool request and the handoff; the table and comparison."""
    from . import report
    from .procs import cpu_plan
    from .runner import Settings, run

    targets = [NETWORK_TARGETS["net-handoff"], NETWORK_TARGETS["net-tool"]]
    settings = Settings(targets=targets, scenarios=args.scenarios, concurrency=args.concurrency,
                        duration=args.duration, warmup=args.warmup, rounds=args.rounds, plan=cpu_plan(True))
    if args.quick:
        settings.duration, settings.warmup, settings.rounds, settings.prime = 0.5, 0.2, 1, 0.3
    rows = run(settings, lambda line: print(line, file=sys.stderr, flush=True))
    known = {**TARGETS, **NETWORK_TARGETS}
    lines = []
    for c in report.comparisons(rows, known):
        line = f"{c['scenario']:<6} c={c['concurrency']:<3} net-handoff vs net-tool: "
        line += f"throughput {100 * c['throughput_ratio']:.0f}%" if c["throughput_ratio"] is not None else "no throughput"
        if c["cpu_per_request_ratio"] is not None:
            line += f", server CPU per request x{c['cpu_per_request_ratio']:.2f}"
        lines.append(line)
    table = [[r["scenario"], r["concurrency"], r["target"], r["rps"], r["p50_ms"], report.cpu_per_request(r), r["errors"]]
             for r in rows]
    headers = ["scenario", "conc", "target", "req/s", "p50 ms", "srv cpu us/req", "errors"]
    return report.format_table(headers, table) + "\n\n" + "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench network", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per agent in-process (default 2)")
    parser.add_argument("--no-load", dest="load", action="store_false", help="in-process figures only")
    parser.add_argument("--quick", action="store_true", help="short runs")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=_ints, default=[1, 32])
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=["json", "stream"])
    args = parser.parse_args(argv)
    import tempfile

    from .report import format_table

    with tempfile.TemporaryDirectory() as directory, _remote_target(directory) as remote:
        rows = asyncio.run(micro(0.3 if args.quick else args.seconds, f"{remote.url}/direct"))
    print("CPU of the serving process per request (median of 100-request batches, agents alternating)\n")
    print(format_table(["agent", "cpu us/request", "requests", "vs direct", "vs tool"], rows))
    ratio = next(r[4] for r in rows if r[0] == "handoff")
    verdict = "met" if ratio - 1 < HANDOFF_CPU_TARGET else "not met"
    print(f"\na local handoff adds {100 * (ratio - 1):+.1f}% CPU to the request it replaces "
          f"(target < {100 * HANDOFF_CPU_TARGET:.0f}%: {verdict})")
    if args.load:
        print("\n" + load(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

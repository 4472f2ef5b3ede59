"""What long-term memory costs: ``python -m bench.targets_longterm``.

The bench harness (:func:`bench.runner.run`) loads, in one run and alternating, agents on
the offline ``scripted/echo`` model (no upstream: the kernel's and the memory's own cost,
the worst case for the relative overhead) that differ only in their memory:

- reads: ``memory-none`` (no memory) beside ``longterm-sqlite`` and ``longterm-postgres``
  with ``inject.enabled``: every request runs a full-text search (and a recency query) for
  the caller, whose store holds :data:`SEEDED_FACTS` facts, and puts the best 5 in the prompt;
- writes: ``tool-noop`` (the same tool call answered by a plain function) beside
  ``longterm-sqlite-write`` and ``longterm-postgres-write``: every request makes the model
  call ``remember`` (an upsert), then answer (two model rounds).

Every request names the user (``"user": "bench-user"``). Before the load, the skill's own
calls are timed in-process (wall and CPU microseconds per call): figures that the machine's
other load moves much less than requests per second. The targets are defined here
rather than in ``bench/targets.py`` so the harness stays plugin-agnostic. The PostgreSQL
targets use ``$ROBUTLER_BENCH_PG_DSN`` (default the local test database) in a schema of
their own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .targets import AGENT, PROMPT, Target, chat_body

BENCH_USER = "bench-user"
PG_DSN = os.environ.get("ROBUTLER_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SEEDED_FACTS = 50
WRITE_PROMPT = 'call remember key="bench fact" value="the benchmark wrote this"'

#: Per-run resources (a temporary directory, a PostgreSQL schema), made on first use.
_RUN: dict[str, str] = {}


def run_dir() -> Path:
    """A temporary directory for this run's files."""
    if "dir" not in _RUN:
        _RUN["dir"] = tempfile.mkdtemp(prefix="robutler-bench-memory-")
    return Path(_RUN["dir"])


def pg_schema() -> str:
    """This run's PostgreSQL schema (created by the skill, dropped by :func:`cleanup`)."""
    return _RUN.setdefault("schema", f"bench_longterm_{uuid.uuid4().hex[:8]}")


def user_body(text: str) -> Callable[[str, str], dict[str, Any]]:
    """A request body builder: ``text`` as the user message, from :data:`BENCH_USER`."""

    def body(model: str, scenario: str) -> dict[str, Any]:
        data = chat_body(model, scenario)
        data["messages"][0]["content"] = text
        data["user"] = BENCH_USER
        return data

    return body


# -- the no-op tools of the write baseline ------------------------------------------------------


def remember(key: str, value: str) -> str:
    """A tool named like the skill's that stores nothing (the write baseline)."""
    return f"Remembered {key!r} (new)."


# -- configs --------------------------------------------------------------------------------------


def agent_config(skills: dict[str, Any] | None = None, tools: Sequence[str] = ()) -> dict[str, Any]:
    """The ``agents`` part of a config: one agent on ``scripted/echo`` with these skills and tools."""
    spec: dict[str, Any] = {"model": "scripted/echo", "instructions": "You are a benchmark agent."}
    if skills:
        spec["skills"] = skills
    if tools:
        spec["tools"] = list(tools)
    return {"agents": {AGENT: spec}}


def sqlite_config(name: str) -> dict[str, Any]:
    """``long_term_memory`` on a SQLite file of this run."""
    return {"backend": "sqlite", "path": str(run_dir() / f"{name}.db")}


def postgres_config(name: str) -> dict[str, Any]:
    """``long_term_memory`` on a table of this run's schema."""
    return {"backend": "postgres", "dsn": PG_DSN, "table": f"{pg_schema()}.{name.replace('-', '_')}"}


async def seed_async(config: dict[str, Any], facts: int = SEEDED_FACTS) -> None:
    """Fill the bench user's memory through the plugin's own backend code: ``facts`` facts,
    three of which share words with the prompt."""
    import msgspec

    from robutler_plugin_longterm import LongTermConfig
    from robutler_plugin_longterm.backends import make_backend
    from robutler_plugin_longterm.scope import Scope
    from robutler_specs.caller import caller_key as user_key

    backend = make_backend(msgspec.convert(config, LongTermConfig))
    scope = Scope(AGENT, user_key("param", BENCH_USER))  # as the request's `user` field
    matching = {"favourite benchmark": "the one with ten words", "request style": "please be brief",
                "echo": "likes hearing words back"}
    await backend.open()
    try:
        for i in range(facts - len(matching)):
            await backend.put(scope, f"fact {i}", f"an unrelated detail number {i} about gardening", facts)
        for key, value in matching.items():
            await backend.put(scope, key, value, facts)
    finally:
        await backend.close()


def seed(config: dict[str, Any], facts: int = SEEDED_FACTS) -> None:
    """:func:`seed_async`, before the server starts."""
    asyncio.run(seed_async(config, facts))


def read_config(make: Callable[[str], dict[str, Any]], name: str) -> Callable[[str], dict[str, Any]]:
    """A config builder: prompt injection on, the store seeded."""

    def build(upstream: str) -> dict[str, Any]:
        config = {**make(name), "inject": {"enabled": True, "top_k": 5}}
        seed(config)
        return agent_config({"long_term_memory": config})

    return build


def write_config(make: Callable[[str], dict[str, Any]], name: str) -> Callable[[str], dict[str, Any]]:
    """A config builder: the tools only (every request writes)."""
    return lambda upstream: agent_config({"long_term_memory": make(name)})


NEEDS = ("robutler_plugin_scripted", "robutler_plugin_longterm")

BASELINES: dict[str, Target] = {
    "memory-none": Target(
        "memory-none", "robutler", "scripted/echo, no memory (the read baseline)",
        config=lambda upstream: agent_config(), needs=("robutler_plugin_scripted",), uses_upstream=False,
        body=user_body(PROMPT),
    ),
    "tool-noop": Target(
        "tool-noop", "robutler", "scripted/echo calling a no-op `remember` tool (the write baseline)",
        config=lambda upstream: agent_config(tools=["bench.targets_longterm:remember"]),
        needs=("robutler_plugin_scripted",), uses_upstream=False, body=user_body(WRITE_PROMPT),
    ),
}

LONGTERM_TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("longterm-sqlite", "robutler", "long_term_memory on SQLite, inject top 5 of 50 facts",
               config=read_config(sqlite_config, "facts_read"), baseline="memory-none", needs=NEEDS,
               uses_upstream=False, body=user_body(PROMPT)),
        Target("longterm-postgres", "robutler", "long_term_memory on PostgreSQL, inject top 5 of 50 facts",
               config=read_config(postgres_config, "facts_read"), baseline="memory-none", needs=(*NEEDS, "asyncpg"),
               uses_upstream=False, body=user_body(PROMPT)),
        Target("longterm-sqlite-write", "robutler", "long_term_memory on SQLite, remember on every request",
               config=write_config(sqlite_config, "facts_write"), baseline="tool-noop", needs=NEEDS,
               uses_upstream=False, body=user_body(WRITE_PROMPT)),
        Target("longterm-postgres-write", "robutler", "long_term_memory on PostgreSQL, remember on every request",
               config=write_config(postgres_config, "facts_write"), baseline="tool-noop", needs=(*NEEDS, "asyncpg"),
               uses_upstream=False, body=user_body(WRITE_PROMPT)),
    ]
}


async def drop_schema() -> None:
    """Drop this run's PostgreSQL schema, if one was used."""
    schema = _RUN.pop("schema", None)
    if schema:
        import asyncpg

        conn = await asyncpg.connect(PG_DSN, timeout=10)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


def cleanup() -> None:
    """Drop this run's schema and remove its files."""
    if "schema" in _RUN:
        asyncio.run(drop_schema())
    directory = _RUN.pop("dir", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


# -- in-process cost per operation ------------------------------------------------------------------


async def measure(fn: Callable[[], Awaitable[Any]], seconds: float) -> tuple[float, float, int]:
    """Median wall microseconds per call (batches of 20), CPU microseconds of this process per
    call (every thread: the SQLite worker, pymilvus' threads), and the number of calls."""
    for _ in range(20):
        await fn()
    batches: list[float] = []
    calls, cpu = 0, time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(batches) < 5:
        started = time.perf_counter()
        for _ in range(20):
            await fn()
        batches.append((time.perf_counter() - started) / 20 * 1e6)
        calls += 20
    return statistics.median(batches), (time.process_time() - cpu) / calls * 1e6, calls


def _cases(skill: Any, ctx: Any) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    writes = iter(range(10**9))
    return [
        ("inject (build_prompt: top 5 of 50)", lambda: skill.build_prompt(ctx)),
        ("recall (full-text search)", lambda: skill.recall("favourite benchmark request", ctx)),
        ("remember (upsert)", lambda: skill.remember("bench fact", f"value {next(writes)}", ctx)),
        ("list_memories (50)", lambda: skill.list_memories(ctx)),
    ]


async def micro(seconds: float, backends: Sequence[str]) -> list[list[Any]]:
    """Rows: backend, operation, wall us, cpu us, calls: the skill's own calls, no HTTP."""
    import msgspec

    from robutler_plugin_longterm import LongTermConfig, LongTermMemory
    from robutler_specs import AgentSpec, Message, RequestContext

    rows: list[list[Any]] = []
    spec = AgentSpec(name=AGENT)
    for name in backends:
        config = (sqlite_config if name == "sqlite" else postgres_config)("micro")
        await seed_async(config)
        skill = LongTermMemory(
            msgspec.convert({**config, "inject": {"enabled": True, "top_k": 5}}, LongTermConfig), spec
        )
        await skill.start()
        ctx = RequestContext(spec, [Message(role="user", content=PROMPT)], params={"user": BENCH_USER})
        try:
            for label, fn in _cases(skill, ctx):
                wall, cpu, calls = await measure(fn, seconds)
                rows.append([name, label, round(wall), round(cpu), calls])
        finally:
            await skill.stop()
    return rows


# -- running and reporting (shared with bench.targets_vector) ------------------------------------


def build_parser(prog: str, description: str, names: Sequence[str]) -> argparse.ArgumentParser:
    """The options of a memory benchmark."""
    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",") if v.strip()]

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--targets", type=lambda s: [v for v in s.split(",") if v], default=list(names),
                        help=f"of {', '.join(names)} (default all; baselines are added)")
    parser.add_argument("--quick", action="store_true", help="short runs (0.5 s, one round)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=ints, default=[1, 64])
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=["json", "stream"])
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    parser.add_argument("--no-load", dest="load", action="store_false", help="in-process figures only")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for the machine to be idle")
    return parser


def run_targets(args: argparse.Namespace, known: dict[str, Target], extra_baselines: dict[str, Target]) -> str:
    """Run the chosen targets and their baselines through the harness; the report."""
    from . import report
    from .procs import cpu_plan, machine_busy, wait_idle
    from .runner import Settings, run

    everything = {**extra_baselines, **known}
    unknown = [n for n in args.targets if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown target(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[n] for n in args.targets]
    wanted = {t.baseline for t in chosen if t.baseline}
    targets = chosen + [everything[n] for n in everything if n in wanted and n not in args.targets]
    missing = sorted({m for t in targets for m in t.missing()})
    if missing:
        raise SystemExit(f"error: install {', '.join(missing)} (pip install -e plugins/...)")
    settings = Settings(targets=targets, scenarios=args.scenarios, concurrency=args.concurrency,
                        duration=args.duration, warmup=args.warmup, rounds=args.rounds, plan=cpu_plan(True))
    if args.quick:
        settings.duration, settings.warmup, settings.rounds, settings.prime = 0.5, 0.2, 1, 0.3
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    busy = wait_idle(report.BUSY_WARNING_PCT, args.wait_idle, say) if args.wait_idle else machine_busy(0.5)
    rows = run(settings, say)
    compared = {c["target"] + "@" + c["scenario"] + str(c["concurrency"]): c for c in report.comparisons(rows, everything)}
    headers = ["scenario", "conc", "target", "req/s", "vs base", "p50 ms", "+p50 ms", "p99 ms", "srv us/req", "errors"]
    table = []
    for r in rows:
        c = compared.get(r["target"] + "@" + r["scenario"] + str(r["concurrency"]))
        ratio = f"{100 * c['throughput_ratio']:.0f}%" if c and c["throughput_ratio"] is not None else "base"
        added = round(c["added_p50_ms"], 3) if c and c["added_p50_ms"] is not None else ""
        table.append([r["scenario"], r["concurrency"], r["target"], r["rps"], ratio, r["p50_ms"], added,
                      r["p99_ms"], report.cpu_per_request(r), r["errors"]])
    out = report.format_table(headers, table)
    if getattr(args, "markdown", False):
        out += "\n\n" + report.markdown_table(headers, table)
    descriptions = "\n".join(f"  {t.name}: {t.description}" for t in targets)
    return out + "\n\ntargets:\n" + descriptions + f"\n\nother processes used {busy:.0f}% of a core before the run"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m bench.targets_longterm", (__doc__ or "").split("\n\n")[0], list(LONGTERM_TARGETS))
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per in-process case (default 2)")
    args = parser.parse_args(argv)
    from .report import format_table

    try:
        backends = [b for b in ("sqlite", "postgres") if any(t.startswith(f"longterm-{b}") for t in args.targets)]
        rows = asyncio.run(micro(0.3 if args.quick else args.seconds, backends))
        print("long_term_memory, in-process: the skill's own calls, no HTTP (median of 20-call batches)\n")
        print(format_table(["backend", "operation", "wall us", "cpu us", "calls"], rows))
        if args.load:
            print("\nunder load: robutler-kernel serve, scripted/echo, with and without long-term memory\n")
            print(run_targets(args, LONGTERM_TARGETS, BASELINES))
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

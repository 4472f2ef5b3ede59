"""``python -m bench.memory_bench``: what short-term memory costs, per backend, in one run.

One ``robutler-kernel serve`` process serves the same agent on ``scripted/echo`` several
times: without memory (``none``), with the in-process backend (``memory``) and with Redis
(``redis``); plus, for the turn test, both backends with the window switched off
(``*-unbounded``: every turn of the conversation is kept and sent). The scripted model
answers at once, so the figures are the kernel's and the memory's own cost: the worst
case for the relative overhead (a real model adds its latency to every row alike).

1. Throughput: ``--concurrency`` workers, each in its own conversation
   (``X-Conversation-Id``), send one user message per request for ``--duration``
   seconds, targets alternating over ``--rounds``. Each conversation is played to 30 turns
   first (more than the default window), so this is the steady state of long
   conversations: every request loads and stores a full window. ``client-history`` is what
   a client does without server memory: the agent ``none``, each request carrying the
   conversation's window (50 messages) itself.
2. Turns: ``--conversations`` conversations of ``--turns`` - 1 turns are played first;
   then, one request at a time and interleaving the backends, the next turn of each is
   timed beside the first turn of a fresh conversation: the median latency of turn 100
   against turn 1 (the issue: at most 2x).

``--baseline-src DIR`` also serves the throughput targets from the sources of another
checkout (``git worktree add DIR <revision>``) in a second server, as ``<target>@base``,
alternating with this checkout's in the same run; each is compared with its own server's
``none``. ``--model openai`` puts the agents on the openai plugin against the kernel's fake
OpenAI upstream (a real HTTP call per request) instead of ``scripted/echo``. ``--profile DIR``
records each throughput cell's first run with py-spy (``DIR/<target>-c<concurrency>.txt``;
summary: ``python -m bench.profile FILE``).

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams (no client
library's overhead in the figures). The server is pinned to core 0 and the generator to
the others when the machine has two or more cores (Redis is not pinned).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import profile
from robutler_kernel.testing import ServeProcess

ROOT = Path(__file__).resolve().parents[1]

#: Agent name -> its short_term_memory config (``None``: no memory at all).
THROUGHPUT_TARGETS = ("none", "memory", "redis", "client-history")
#: The throughput target without memory whose client sends the conversation itself: the
#: agent ``none``, each request carrying the window the memory agents send to the model.
CLIENT_HISTORY = "client-history"
TURN_TARGETS = ("none", "memory", "redis", "memory-unbounded", "redis-unbounded")
UNBOUNDED = {"max_messages": 100_000, "max_tokens": None}

PROMPT = "Benchmark turn: please echo these ten words back, thanks."
#: Turns played in each throughput conversation before timing: more than the default
#: window holds (50 messages = 25 turns).
PREFILL_TURNS = 30


def agents_config(redis_url: str, prefix: str, upstream: str | None = None) -> dict[str, Any]:
    """The ``agents`` section: one agent per target (on ``upstream``, the fake OpenAI
    upstream, when given; else on ``scripted/echo``)."""
    redis = {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix}
    skills: dict[str, dict[str, Any] | None] = {
        "none": None,
        "memory": {"backend": "memory"},
        "redis": redis,
        "memory-unbounded": {"backend": "memory", **UNBOUNDED},
        "redis-unbounded": {**redis, **UNBOUNDED},
    }
    agents: dict[str, Any] = {}
    for name, memory in skills.items():
        spec: dict[str, Any] = {"model": "scripted/echo", "instructions": "You are a benchmark agent."}
        skills_: dict[str, Any] = {}
        if upstream is not None:
            spec["model"] = "openai/fake-model"
            skills_["openai"] = {"base_url": upstream, "api_key": "x"}
        if memory is not None:
            skills_["short_term_memory"] = memory
        if skills_:
            spec["skills"] = skills_
        agents[name] = spec
    return agents


def config_text(redis_url: str, prefix: str, upstream: str | None = None) -> str:
    """The whole YAML config (JSON is YAML)."""
    return json.dumps({
        "server": {"host": "127.0.0.1", "port": 0, "metrics_port": None, "log_level": "warning"},
        "agents": agents_config(redis_url, prefix, upstream),
    }, indent=1)


# -- the server --------------------------------------------------------------------------


def Server(config: Path, cores: set[int] | None, src: str | None = None, hide: Sequence[str] = (),
           plugins: Sequence[str] = ("scripted", "memory")) -> ServeProcess:
    """``robutler-kernel serve`` with the plugins this benchmark needs, pinned to ``cores``;
    on the package sources of the checkout ``src`` when given, without the modules ``hide``
    (to serve a revision as it was installed, e.g. before it depended on a module)."""
    env: dict[str, str] = {}
    if src is not None:
        from bench.procs import source_paths

        paths = source_paths(src)
        if hide:
            shadow = Path(tempfile.mkdtemp(prefix="memory-bench-hide-"))
            for module in hide:
                (shadow / f"{module}.py").write_text(f"raise ImportError('{module} is hidden from the baseline')\n")
            paths.insert(0, str(shadow))
        env["PYTHONPATH"] = os.pathsep.join([*paths, src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return ServeProcess(config, plugins=list(plugins), cwd=src or ROOT, cores=cores, timeout=60, env=env)


class Connection:
    """One keep-alive connection; ``post`` returns (status, body)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        else:  # chunked
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


_BODY = json.dumps({"messages": [{"role": "user", "content": PROMPT}]}).encode()
#: A full default window (50 messages: 25 turns of scripted/echo) and the new prompt.
_HISTORY_BODY = json.dumps({"messages": [
    *(m for _ in range(25) for m in ({"role": "user", "content": PROMPT}, {"role": "assistant", "content": PROMPT})),
    {"role": "user", "content": PROMPT},
]}).encode()


async def _turn(conn: Connection, target: str, conversation: str) -> float:
    """One request; its latency in seconds (raises on anything but a 200 completion)."""
    agent, body = ("none", _HISTORY_BODY) if target == CLIENT_HISTORY else (target, _BODY)
    started = time.perf_counter()
    status, data = await conn.post(f"/{agent}/chat/completions", body, {"X-Conversation-Id": conversation})
    elapsed = time.perf_counter() - started
    if status != 200 or b'"choices"' not in data:
        raise RuntimeError(f"{target}: HTTP {status}: {data[:300]!r}")
    return elapsed


# -- the measurements ------------------------------------------------------------------------------


@dataclass
class Throughput:
    """One target at one concurrency, merged over rounds."""

    target: str
    concurrency: int
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    #: CPU seconds used during the timed runs by the server, and by Redis (when local).
    server_cpu: float = 0.0
    redis_cpu: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _cpu(process: Any) -> float:
    """CPU seconds (user + system) a psutil process has used so far; 0 if it is gone."""
    try:
        times = process.cpu_times()
    except Exception:
        return 0.0
    return float(times.user + times.system)


def _redis_process(url: str) -> Any:
    """The local ``redis-server`` process serving ``url``, if it can be found and read."""
    try:
        import psutil

        if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            return None
        for process in psutil.process_iter(["name"]):
            if process.info["name"] == "redis-server":
                process.cpu_times()
                return process
    except Exception:
        return None
    return None


def _conversation(run: str, agent: str, concurrency: int, index: int) -> str:
    """Worker ``index``'s conversation: the same in every round, so it stays full."""
    return f"bench-{run}-{agent}-{concurrency}-{index}"


async def _prefill(url: str, run: str, agent: str, concurrency: int, turns: int) -> None:
    """Play ``turns`` turns in each worker's conversation (untimed): from the first timed
    request on, every conversation holds a full window."""
    parts = urlsplit(url)

    async def fill(index: int) -> None:
        conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            for _ in range(turns):
                await _turn(conn, agent, _conversation(run, agent, concurrency, index))
        finally:
            conn.close()

    await asyncio.gather(*(fill(i) for i in range(concurrency)))


async def _load(url: str, run: str, agent: str, concurrency: int, warmup: float, duration: float,
                watch: Sequence[Any] = ()) -> tuple[int, float, list[float], list[float]]:
    """Run the workers; returns (requests, seconds, latencies, CPU seconds of each
    ``watch`` process during the timed phase)."""
    parts = urlsplit(url)
    latencies: list[float] = []
    start_at = time.perf_counter() + warmup
    end_at = start_at + duration
    cpu_start: list[float] = []

    async def sample_cpu() -> None:
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        cpu_start.extend(_cpu(p) for p in watch)

    async def worker(index: int) -> None:
        conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        conversation = _conversation(run, agent, concurrency, index)
        try:
            while time.perf_counter() < end_at:
                measured = time.perf_counter() >= start_at
                elapsed = await _turn(conn, agent, conversation)
                if measured:
                    latencies.append(elapsed)
        finally:
            conn.close()

    await asyncio.gather(sample_cpu(), *(worker(i) for i in range(concurrency)))
    cpu = [_cpu(p) - before for p, before in zip(watch, cpu_start, strict=True)]
    return len(latencies), duration, latencies, cpu


async def _turn_pairs(url: str, targets: Sequence[str], conversations: int, turns: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per target: latencies of turn 1 and of turn ``turns``, measured side by side.

    Each target first gets ``conversations`` conversations of ``turns - 1`` turns (not
    timed). Then, one request at a time and interleaving the targets, each conversation's
    turn ``turns`` is timed right after the first turn of a fresh conversation, so both
    figures come from the same moments (this machine's noise hits them alike).
    """
    parts = urlsplit(url)
    conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    run = uuid.uuid4().hex[:8]
    results: dict[str, tuple[list[float], list[float]]] = {t: ([], []) for t in targets}
    try:
        for target in targets:
            for c in range(conversations):
                for _ in range(turns - 1):
                    await _turn(conn, target, f"long-{run}-{c}")
        for c in range(conversations):
            for target in targets:
                first, last = results[target]
                first.append(await _turn(conn, target, f"fresh-{run}-{c}"))
                last.append(await _turn(conn, target, f"long-{run}-{c}"))
    finally:
        conn.close()
    return results


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def throughput_table(rows: list[Throughput]) -> str:
    """Markdown: requests/s and latency per target and concurrency, against ``none``."""
    base = {(r.target.partition("@")[2], r.concurrency): r.rps for r in rows if r.target.partition("@")[0] == "none"}
    out = ["| backend | concurrency | requests/s | vs no memory | p50 ms | p99 ms | server CPU us/request "
           "| Redis CPU us/request |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        own = base.get((r.target.partition("@")[2], r.concurrency))
        ratio = f"{r.rps / own:.2f}x" if own else "-"
        per = 1e6 / r.requests if r.requests else 0.0
        redis_cpu = "-" if r.redis_cpu is None or r.target.partition("@")[0] != "redis" else f"{r.redis_cpu * per:.0f}"
        out.append(
            f"| {r.target} | {r.concurrency} | {r.rps:,.0f} | {ratio} | "
            f"{percentile(r.latencies, 50) * 1000:.2f} | {percentile(r.latencies, 99) * 1000:.2f} | "
            f"{r.server_cpu * per:.0f} | {redis_cpu} |"
        )
    return "\n".join(out)


def turns_table(results: dict[str, tuple[list[float], list[float]]], turns: int) -> str:
    """Markdown: median latency of turn 1 and of turn ``turns``, and their ratio."""
    out = [f"| backend | turn 1 p50 ms | turn {turns} p50 ms | turn {turns} / turn 1 | within 2x |",
           "|---|---:|---:|---:|---:|"]
    for target, (first, last) in results.items():
        a, b = statistics.median(first), statistics.median(last)
        out.append(f"| {target} | {a * 1000:.2f} | {b * 1000:.2f} | {b / a:.2f}x | {'yes' if b / a <= 2 else 'NO'} |")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1.5, help="seconds of each timed run (default 1.5)")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds of warm-up before each run (default 0.3)")
    parser.add_argument("--rounds", type=int, default=6,
                        help="runs per target and concurrency, alternating: short runs, many rounds, so that "
                             "other load on the machine hits every target alike (default 6)")
    parser.add_argument("--concurrency", default="1,16", help="workers, comma-separated (default 1,16)")
    parser.add_argument("--conversations", type=int, default=50, help="conversations of the turn test (default 50)")
    parser.add_argument("--turns", type=int, default=100, help="turns of each conversation (default 100)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="also serve the throughput targets from the sources of another checkout "
                             "(git worktree add DIR <revision>), as <target>@base, in the same run")
    parser.add_argument("--baseline-hide", default="", metavar="MODULES",
                        help="modules the baseline server must not import, comma-separated (e.g. hiredis: "
                             "the baseline as installed before it depended on it)")
    parser.add_argument("--model", choices=("scripted", "openai"), default="scripted",
                        help="scripted/echo (default: no I/O, the worst case for the overhead) or the "
                             "openai plugin on the kernel's fake OpenAI upstream")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy profiles of each throughput cell's first run into DIR "
                             "(summary: python -m bench.profile FILE)")
    parser.add_argument("--targets", default=",".join(THROUGHPUT_TARGETS), metavar="NAMES",
                        help="throughput targets, comma-separated (default none,memory,redis,client-history; "
                             "keep none: the ratios are against it)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = set(args.targets.split(",")) - set(THROUGHPUT_TARGETS)
    if unknown:
        build_parser().error(f"--targets: unknown {', '.join(sorted(unknown))} (choose from {', '.join(THROUGHPUT_TARGETS)})")
    concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.quick:
        args.duration, args.warmup, args.rounds = 0.5, 0.2, 1
        args.conversations, args.turns = min(args.conversations, 3), min(args.turns, 10)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cores = {cores[0]} if len(cores) >= 2 else None
    prefix = f"robutler-bench:stm:{uuid.uuid4().hex}:"
    upstream: Any = None
    servers: dict[str, ServeProcess] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "memory-bench.yaml"
        plugins = ["scripted", "memory"]
        upstream_url = None
        if args.model == "openai":
            upstream, upstream_url = _fake_upstream(set(cores[1:]) or None)
            plugins.append("openai")
        config.write_text(config_text(args.redis_url, prefix, upstream_url))
        try:
            servers[""] = Server(config, server_cores, plugins=plugins)
            if args.baseline_src:
                hide = [m.strip() for m in args.baseline_hide.split(",") if m.strip()]
                servers["@base"] = Server(config, server_cores, str(Path(args.baseline_src).resolve()), hide, plugins)
            if server_cores:
                os.sched_setaffinity(0, set(cores[1:]))
            log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
            import psutil

            redis_process = _redis_process(args.redis_url)
            watches = {suffix: [psutil.Process(server.process.pid), *([redis_process] if redis_process else [])]
                       for suffix, server in servers.items()}
            targets = [t.strip() for t in args.targets.split(",") if t.strip()]
            cells = [(t, suffix) for suffix in servers for t in targets]
            rows = {(t + suffix, c): Throughput(t + suffix, c) for c in concurrency for t, suffix in cells}
            run = uuid.uuid4().hex[:8]
            log("filling each worker's conversation")
            for c in concurrency:
                for target, suffix in cells:
                    asyncio.run(_prefill(servers[suffix].url, run + suffix, target, c, PREFILL_TURNS))
            for round_ in range(args.rounds):
                order = cells if round_ % 2 == 0 else list(reversed(cells))
                for c in concurrency:
                    for target, suffix in order:
                        log(f"round {round_ + 1}/{args.rounds}: {target}{suffix} x{c}")
                        spy = None
                        if args.profile and round_ == 0:
                            args.profile.mkdir(parents=True, exist_ok=True)
                            spy = profile.start(servers[suffix].process.pid, args.profile / f"{target}{suffix}-c{c}.txt",
                                                args.warmup + args.duration)
                        n, seconds, latencies, cpu = asyncio.run(
                            _load(servers[suffix].url, run + suffix, target, c, args.warmup, args.duration,
                                  watches[suffix])
                        )
                        if spy is not None:
                            spy.wait(30)
                        row = rows[(target + suffix, c)]
                        row.requests += n
                        row.seconds += seconds
                        row.latencies.extend(latencies)
                        row.server_cpu += cpu[0]
                        if len(cpu) > 1:
                            row.redis_cpu = (row.redis_cpu or 0.0) + cpu[1]
            log(f"turns: {args.conversations} conversations x {args.turns} turns per target")
            turn_results = asyncio.run(_turn_pairs(servers[""].url, TURN_TARGETS, args.conversations, args.turns))
        finally:
            for server in servers.values():
                server.stop()
            if upstream is not None:
                upstream.terminate()
                upstream.wait(10)
            _clean_redis(args.redis_url, prefix)
    model = "scripted/echo" if args.model == "scripted" else "openai plugin on the fake upstream"
    ordered = [rows[(t + suffix, c)] for c in concurrency for t, suffix in cells]
    print(f"Short-term memory: requests/s per backend ({model}, steady state: full window; "
          f"{args.rounds} x {args.duration:g} s per cell)\n")
    print(throughput_table(ordered))
    print(f"\nTurn 1 against turn {args.turns} ({args.conversations} conversations per backend, "
          f"one request at a time, interleaved)\n")
    print(turns_table(turn_results, args.turns))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "throughput": [{"target": r.target, "concurrency": r.concurrency, "rps": r.rps,
                            "server_cpu_us_per_request": r.server_cpu * 1e6 / max(1, r.requests),
                            "p50_ms": percentile(r.latencies, 50) * 1000, "p99_ms": percentile(r.latencies, 99) * 1000}
                           for r in ordered],
            "turns": {t: {"turn_1_ms": [v * 1000 for v in first], f"turn_{args.turns}_ms": [v * 1000 for v in last]}
                      for t, (first, last) in turn_results.items()},
        }, indent=1))
    return 0


def _fake_upstream(cores: set[int] | None) -> tuple[Any, str]:
    """The kernel's fake OpenAI upstream, as a process (pinned with the load generator)."""
    import subprocess
    import urllib.request

    from bench.procs import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "robutler_kernel.testing.fake_openai", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(process.pid, cores)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1).close()
            return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the fake OpenAI upstream did not start") from None
            time.sleep(0.1)


def _clean_redis(url: str, prefix: str) -> None:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
        client.close()
    except Exception as exc:  # the figures matter more than the cleanup
        print(f"warning: could not delete the benchmark's Redis keys {prefix}*: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""The run: start the upstream and the servers, then run the load generator cell by cell.

A cell is (scenario, concurrency). In each cell the compared targets (Robutler targets and
their baselines) run ``rounds`` times, alternating and in reverse order on odd rounds, so
machine noise hits both sides; reference targets (``direct``) run once per cell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs as P
from . import profile
from .stats import merge_runs
from .targets import Target, server_config, to_yaml


@dataclass
class Settings:
    """What to run (see ``python -m bench --help``)."""

    targets: list[Target]
    scenarios: list[str] = field(default_factory=lambda: ["json", "stream"])
    concurrency: list[int] = field(default_factory=lambda: [1, 64])
    duration: float = 3.0
    warmup: float = 0.5
    rounds: int = 2
    max_requests: int = 200_000
    prime: float = 1.0
    plan: P.CpuPlan = field(default_factory=P.cpu_plan)
    log_dir: Path | None = None
    profile_dir: Path | None = None


@dataclass
class Server:
    """A running target: where to send requests and which process serves them."""

    target: Target
    base: str
    pid: int


def start_servers(settings: Settings, procs: P.ProcessSet, plan: P.CpuPlan, log_dir: Path) -> tuple[dict[str, Server], int | None]:
    """Start the fake upstream (when needed) and every target; returns them and the upstream pid."""
    upstream_url, upstream_pid = "http://127.0.0.1:9/v1", None  # nothing listens there
    if any(t.uses_upstream for t in settings.targets):
        port = P.free_port()
        fake = procs.start(P.Proc("upstream", ["-m", "robutler_kernel.testing.fake_openai", "--port", str(port)],
                                  log_dir, plan.upstream))
        upstream_url, upstream_pid = f"http://127.0.0.1:{port}/v1", fake.pid
        fake.wait_http(f"{upstream_url}/models")
    servers: dict[str, Server] = {}
    for target in settings.targets:
        if target.kind == "upstream":
            assert upstream_pid is not None
            servers[target.name] = Server(target, upstream_url.removesuffix("/v1"), upstream_pid)
            continue
        port = P.free_port()
        if target.kind == "robutler":
            config = server_config(target, upstream_url, port=port, metrics_port=P.free_port())
            path = log_dir / f"{target.name}.yaml"
            path.write_text(to_yaml(config))
            argv = ["-m", "robutler_kernel.cli", "serve", "--config", str(path), "--port", str(port),
                    "--metrics-port", str(config["server"]["metrics_port"])]
            if target.workers > 1:
                argv += ["--workers", str(target.workers)]
        elif target.kind == "passthrough":
            argv = ["-m", "bench.passthrough", "--port", str(port), "--upstream", upstream_url, *target.args]
        else:
            raise ValueError(f"{target.name}: unknown kind {target.kind!r}")
        # Workers inherit the supervisor's cores: with several, the server gets every core
        # (shared with the fake upstream and the load generator on a small machine).
        cores = plan.all if target.workers > 1 else plan.server
        proc = procs.start(P.Proc(target.name, argv, log_dir, cores, src=target.src))
        servers[target.name] = Server(target, f"http://127.0.0.1:{port}", proc.pid)
    for name, server in servers.items():
        if server.target.kind != "upstream":
            next(p for p in procs.procs if p.name == name).wait_http(f"{server.base}/health")
    return servers, upstream_pid


def run_load(server: Server, scenario: str, concurrency: int, *, duration: float, warmup: float,
             max_requests: int, cores: set[int] | None, upstream_pid: int | None) -> dict[str, Any]:
    """One run of :mod:`bench.load` in its own process; returns its JSON result."""
    watch = [f"server={server.pid}"]
    if upstream_pid is not None and upstream_pid != server.pid and server.target.uses_upstream:
        watch.append(f"upstream={upstream_pid}")
    argv = [sys.executable, "-m", "bench.load", "--url", server.base + server.target.path,
            "--body", json.dumps(server.target.request_body(scenario)), "--concurrency", str(concurrency),
            "--duration", str(duration), "--warmup", str(warmup), "--max-requests", str(max_requests),
            "--watch", ",".join(watch)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=P.ROOT, env=P.python_env(), start_new_session=True)
    try:
        P.pin(proc.pid, cores)
        out, err = proc.communicate(timeout=warmup + duration + 90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed ({proc.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return dict(json.loads(out))


def plan_cell(targets: list[Target], rounds: int) -> list[Target]:
    """The order of the runs of one cell: compared targets alternate round by round
    (reversed on odd rounds); references run once, at the end."""
    compared = [t for t in targets if not t.reference]
    order: list[Target] = []
    for r in range(rounds):
        order.extend(compared if r % 2 == 0 else reversed(compared))
    return order + [t for t in targets if t.reference]


def run(settings: Settings, progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run everything; returns one merged row per (scenario, concurrency, target)."""
    plan = settings.plan
    P.pin(os.getpid(), plan.load)
    log_dir = settings.log_dir or Path(tempfile.mkdtemp(prefix="robutler-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    progress(f"pinning: {plan.describe()}; logs in {log_dir}")
    rows: list[dict[str, Any]] = []
    with P.ProcessSet() as procs:
        servers, upstream_pid = start_servers(settings, procs, plan, log_dir)
        progress("servers: " + ", ".join(f"{name} pid {s.pid} at {s.base}" for name, s in servers.items()))
        # Resident memory once the servers answer, before any load: the idle figure.
        idle = {name: P.rss_mib(s.pid) for name, s in servers.items() if s.target.kind != "upstream"}
        if settings.profile_dir:
            settings.profile_dir.mkdir(parents=True, exist_ok=True)
        common = {"max_requests": settings.max_requests, "cores": plan.load, "upstream_pid": upstream_pid}
        if settings.prime > 0:
            for server in servers.values():
                for scenario in settings.scenarios:
                    run_load(server, scenario, max(settings.concurrency), duration=0, warmup=settings.prime, **common)
        for scenario in settings.scenarios:
            for concurrency in settings.concurrency:
                runs: dict[str, list[dict[str, Any]]] = {}
                for target in plan_cell(settings.targets, settings.rounds):
                    spy = None
                    if settings.profile_dir and not target.reference and target.name not in runs:
                        out = settings.profile_dir / f"{target.name}-{scenario}-c{concurrency}.txt"
                        spy = profile.start(servers[target.name].pid, out, settings.warmup + settings.duration)
                    result = run_load(servers[target.name], scenario, concurrency, duration=settings.duration,
                                      warmup=settings.warmup, **common)
                    if spy is not None:
                        try:
                            spy.wait(30)
                        except subprocess.TimeoutExpired:
                            os.killpg(spy.pid, signal.SIGKILL)
                    runs.setdefault(target.name, []).append(result)
                    rps = result["requests"] / result["elapsed"] if result["elapsed"] else 0.0
                    progress(f"  {scenario:<6} c={concurrency:<3} {target.name:<18} {rps:8.0f} req/s"
                             + (f"  errors={result['errors']}" if result["errors"] else ""))
                for target in settings.targets:
                    if target.name in runs:
                        rows.append({"scenario": scenario, "concurrency": concurrency, "target": target.name,
                                     **merge_runs(runs[target.name]),
                                     **_memory(idle.get(target.name), P.rss_mib(servers[target.name].pid))})
                for server in servers.values():
                    if server.target.kind != "upstream":
                        next(p for p in procs.procs if p.name == server.target.name).check_alive()
    return rows


def _memory(idle: tuple[float, float] | None, now: tuple[float, float] | None) -> dict[str, float]:
    """A row's resident memory in MiB: once started (``rss_idle_mib``), right after the
    cell (``rss_mib``) and the most it has held so far (``rss_peak_mib``, the kernel's
    high-water mark: the peak under load, however short)."""
    out: dict[str, float] = {}
    if idle is not None:
        out["rss_idle_mib"] = round(idle[0], 1)
    if now is not None:
        out["rss_mib"], out["rss_peak_mib"] = round(now[0], 1), round(now[1], 1)
    return out


__all__ = ["Server", "Settings", "plan_cell", "run", "run_load", "start_servers"]

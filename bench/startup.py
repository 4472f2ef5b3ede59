"""How fast a server starts: ``python -m bench startup`` (``tox -e bench -- startup``).

Each round starts every target as a new process, pinned to the server's core, and times
from the ``exec`` to

- **ready**: the first ``GET /health`` answered (:meth:`.procs.Proc.wait_http`, asking every
  2 ms: what a load balancer or a Kubernetes readiness probe waits for);
- **first answer**: one chat completion answered 200 right after (imports and pools made
  on first use are in it);

then reads its resident memory and stops it. Targets alternate round by round, so other load
on the machine hits them alike. The targets:

- ``quickstart``: ``robutler-kernel serve`` with no config, the README's first command (the
  offline demo agent on ``scripted/echo``);
- ``robutler``: the README's openai config (the bench's ``robutler`` target) against the
  fake upstream, started once beforehand;
- ``passthrough``: the bare Starlette-on-Hypercorn pass-through proxy of the main bench.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import procs as P
from .report import format_table
from .targets import TARGETS, server_config, to_yaml

STARTUP_TARGETS = ("quickstart", "robutler", "passthrough")
#: Seconds a target may take to answer before the run fails.
TIMEOUT = 60.0
POLL = 0.002


def _post(port: int, path: str, body: bytes) -> int:
    """The status of one JSON ``POST`` to ``127.0.0.1:port``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def time_start(proc: P.Proc, port: int, chat_path: str, body: bytes) -> dict[str, float]:
    """Start ``proc`` and time it (see the module docstring); stops it before returning.

    :return: ``ready_ms``, ``first_answer_ms`` and ``rss_mib`` (after the answer).
    :raises RuntimeError: it exited, failed the request, or did not answer in time.
    """
    started = time.perf_counter()
    proc.start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/health", timeout=TIMEOUT, interval=POLL)
        ready = time.perf_counter() - started
        status = _post(port, chat_path, body)
        answered = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"{proc.name}: the first chat completion got HTTP {status}:\n{proc.log_tail()}")
        memory = P.rss_mib(proc.pid)
        return {"ready_ms": ready * 1000, "first_answer_ms": answered * 1000,
                "rss_mib": memory[0] if memory else float("nan")}
    finally:
        proc.stop()


def _launcher(name: str, upstream: str, log_dir: Path, cores: set[int] | None) -> Callable[[], tuple[P.Proc, int, str, bytes]]:
    """A function making a fresh, unstarted process of target ``name`` on a free port."""

    def make() -> tuple[P.Proc, int, str, bytes]:
        port = P.free_port()
        if name == "quickstart":
            # An empty working directory: no ./robutler.yaml, so the demo agent it serves.
            argv = ["-m", "robutler_kernel.cli", "serve", "--port", str(port)]
            proc = P.Proc(name, argv, log_dir, cores, cwd=log_dir / "quickstart")
            body = {"messages": [{"role": "user", "content": "Hello!"}]}
            return proc, port, "/assistant/chat/completions", json.dumps(body).encode()
        target = TARGETS[name]
        if name == "passthrough":
            argv = ["-m", "bench.passthrough", "--port", str(port), "--upstream", upstream]
        else:
            config = server_config(target, upstream, port=port, metrics_port=None)
            path = log_dir / f"{name}.yaml"
            path.write_text(to_yaml(config))
            argv = ["-m", "robutler_kernel.cli", "serve", "--config", str(path), "--port", str(port)]
        body = target.request_body("json")
        return P.Proc(name, argv, log_dir, cores), port, target.path, json.dumps(body).encode()

    return make


def run(targets: Sequence[str], rounds: int, progress: Callable[[str], None] = print) -> dict[str, list[dict[str, float]]]:
    """Every target ``rounds`` times, alternating; the measurements of each."""
    plan = P.cpu_plan()
    log_dir = Path(tempfile.mkdtemp(prefix="robutler-bench-startup-"))
    (log_dir / "quickstart").mkdir()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    with P.ProcessSet() as procs:
        upstream = "http://127.0.0.1:9/v1"  # nothing listens there
        if any(name != "quickstart" for name in targets):
            port = P.free_port()
            fake = procs.start(P.Proc("upstream", ["-m", "robutler_kernel.testing.fake_openai", "--port", str(port)],
                                      log_dir, plan.upstream))
            upstream = f"http://127.0.0.1:{port}/v1"
            fake.wait_http(f"{upstream}/models")
        launchers = {name: _launcher(name, upstream, log_dir, plan.server) for name in targets}
        for round_ in range(rounds):
            for name in targets if round_ % 2 == 0 else list(reversed(targets)):
                proc, port, path, body = launchers[name]()
                figures = time_start(proc, port, path, body)
                results[name].append(figures)
                progress(f"  round {round_ + 1}/{rounds} {name:<12} ready {figures['ready_ms']:7.1f} ms"
                         f"  first answer {figures['first_answer_ms']:7.1f} ms")
    return results


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """Medians and maxima per target."""
    rows = []
    for name, runs in results.items():
        ready = [r["ready_ms"] for r in runs]
        first = [r["first_answer_ms"] for r in runs]
        rows.append([name, len(runs), round(statistics.median(ready), 1), round(max(ready), 1),
                     round(statistics.median(first), 1), round(max(first), 1),
                     round(statistics.median(r["rss_mib"] for r in runs), 1)])
    headers = ["target", "runs", "ready p50 ms", "ready max ms", "first answer p50 ms", "first answer max ms",
               "rss MiB"]
    return format_table(headers, rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="starts of each target (default 5)")
    parser.add_argument("--targets", default=",".join(STARTUP_TARGETS),
                        help=f"comma-separated, of {', '.join(STARTUP_TARGETS)}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in STARTUP_TARGETS]
    if unknown or not targets:
        print(f"error: unknown target(s) {', '.join(unknown) or '(none)'}; known: {', '.join(STARTUP_TARGETS)}")
        return 2
    try:
        results = run(targets, args.rounds, progress=lambda line: print(line, flush=True))
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1
    print(table(results))
    return 0


__all__ = ["STARTUP_TARGETS", "main", "run", "table", "time_start"]

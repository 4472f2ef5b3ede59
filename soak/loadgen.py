"""A load generator for many concurrent connections: one new connection per request.

It is cheaper per connection than ``bench.load`` (aiohttp): each request is a bare asyncio
protocol that writes one HTTP/1.1 request with ``connection: close`` and keeps only the
status line and the last bytes of the answer, so one process holds thousands of slow
streams on a small machine. :func:`run_spread` runs it in several processes at once (a
core each can then read its share of the chunks) and merges their results.

A request is ``ok`` when its status is 200 and its body is a chat completion (JSON) or a
stream ending with ``data: [DONE]`` and the chunked terminator. Each result is
``[start, ttfb, total, ok, error]``: seconds from the common start, to the first byte
(from its own start) and to the end.

By hand: ``python -m soak.loadgen --port 8000 --count 100 --body '{...}'``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DONE = b"data: [DONE]\n\n"
CHUNKED_END = b"0\r\n\r\n"
ROOT = Path(__file__).resolve().parents[1]


def raise_nofile(wanted: int = 65536) -> int:
    """Raise this process's open files limit (soft, and hard when allowed: root) towards
    ``wanted``; children inherit it. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limits in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return limits[0]
        except (ValueError, OSError):
            continue
    return soft


class Exchange(asyncio.Protocol):
    """One request on its own connection."""

    def __init__(self, request: bytes, stream: bool, done: asyncio.Future[None]) -> None:
        self.request = request
        self.stream = stream
        self.done = done
        self.head = b""
        self.tail = b""
        self.first = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.first:
            self.first = time.perf_counter()
        if len(self.head) < 512:
            self.head += data[: 512 - len(self.head)]
        self.tail = (self.tail + data)[-4096:] if self.stream else self.tail + data
        if self.stream and self.tail.endswith(CHUNKED_END) and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def verdict(self) -> str | None:
        """``None`` when the answer is complete and good, else what is wrong."""
        status = self.head.split(b"\r\n", 1)[0]
        if not status.startswith(b"HTTP/1.1 200"):
            return (status.decode(errors="replace") or "no answer") + " " + self.tail[-200:].decode(errors="replace")
        if self.stream:
            body = self.tail.rstrip(b"\r\n0")
            if not self.tail.endswith(CHUNKED_END) or not body.endswith(DONE.rstrip()):
                return "stream cut short: ..." + self.tail[-200:].decode(errors="replace")
            if b'"error"' in self.tail[-600:]:
                return "stream ended with an error event: " + self.tail[-300:].decode(errors="replace")
        elif b'"choices"' not in self.tail:
            return "no chat completion: " + self.tail[-200:].decode(errors="replace")
        return None


async def one(host: str, port: int, request: bytes, stream: bool, t0: float, timeout: float) -> list[Any]:
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    done: asyncio.Future[None] = loop.create_future()
    exchange = Exchange(request, stream, done)
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: exchange, host, port)
            await done
        error = exchange.verdict()
    except TimeoutError:
        error = f"client time-out after {timeout:g} s"
        if exchange.transport is not None:
            exchange.transport.abort()
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    end = time.perf_counter()
    ttfb = (exchange.first - start) if exchange.first else end - start
    return [round(start - t0, 4), round(ttfb, 4), round(end - start, 4), error is None, error]


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
             f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(args: argparse.Namespace) -> list[list[Any]]:
    body = args.body.encode()
    stream = bool(json.loads(body).get("stream"))
    headers = dict(h.split(":", 1) for h in args.header)
    request = build_request(args.host, args.port, args.path, body, {k.strip(): v.strip() for k, v in headers.items()})
    delay = args.start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    t0 = time.perf_counter()
    tasks = []
    step = args.ramp / args.count if args.ramp and args.count else 0.0
    for n in range(args.count):
        if step:
            lag = t0 + n * step - time.perf_counter()
            if lag > 0:
                await asyncio.sleep(lag)
        tasks.append(asyncio.ensure_future(one(args.host, args.port, request, stream, t0, args.timeout)))
    return list(await asyncio.gather(*tasks))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m soak.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--body", required=True, help="the JSON request body")
    parser.add_argument("--header", action="append", default=[], help="name: value (repeatable)")
    parser.add_argument("--count", type=int, default=1, help="requests, each on a new connection, all at once")
    parser.add_argument("--ramp", type=float, default=0.0, help="seconds over which to open them")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--start-at", type=float, default=0.0, help="wall-clock time to start at")
    args = parser.parse_args(argv)
    raise_nofile(args.count * 2 + 1024)
    # A short-lived process: the few cycles its requests leave are freed at exit, and the
    # collector's passes over thousands of live connections would be load generator CPU.
    gc.disable()
    try:
        import uvloop

        results = uvloop.run(run(args))
    except ImportError:
        results = asyncio.run(run(args))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    json.dump({"results": results, "cpu": usage.ru_utime + usage.ru_stime, "system": usage.ru_stime}, sys.stdout)


def run_spread(port: int, body: dict[str, Any], count: int, *, processes: int = 1, ramp: float = 0.0,
               timeout: float = 60.0, path: str = "/v1/chat/completions", headers: dict[str, str] | None = None,
               usage: dict[str, float] | None = None) -> list[list[Any]]:
    """Send ``count`` requests over ``processes`` generator processes, all starting together
    (each opens its share over ``ramp`` seconds); returns every result. ``usage``, when
    given, gets ``cpu``: the CPU seconds the generator processes used together (``system``:
    the kernel's part of them)."""
    processes = max(1, min(processes, count))
    start_at = time.time() + 0.5 + 0.1 * processes
    argv = [sys.executable, "-m", "soak.loadgen", "--port", str(port), "--path", path, "--body", json.dumps(body),
            "--timeout", str(timeout), "--start-at", str(start_at), "--ramp", str(ramp)]
    for name, value in (headers or {}).items():
        argv += ["--header", f"{name}: {value}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    shares = [count // processes + (1 if n < count % processes else 0) for n in range(processes)]
    procs = [subprocess.Popen([*argv, "--count", str(share)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, cwd=ROOT) for share in shares]
    results: list[list[Any]] = []
    cpu = system = 0.0
    for proc in procs:
        out, err = proc.communicate(timeout=timeout + ramp + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"a load generator failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
        answer = json.loads(out)
        results.extend(answer["results"])
        cpu += answer["cpu"]
        system += answer["system"]
    if usage is not None:
        usage.update(cpu=round(cpu, 2), system=round(system, 2))
    return results


if __name__ == "__main__":
    main()

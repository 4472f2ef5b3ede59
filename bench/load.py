"""The load generator: ``--concurrency`` aiohttp workers over keep-alive connections.

Each worker sends the same request in a loop: a warm-up phase (not recorded), then a timed
phase that ends after ``--duration`` seconds or ``--max-requests`` requests, whichever comes
first. Every request of the timed phase is timed from before the POST to the last body byte
(and to the first body byte: TTFB). A response counts as an error unless it is a 200 with a
chat completion (JSON) or ends with ``data: [DONE]`` (stream).

It prints one JSON object on stdout: ``requests``, ``errors``, ``error_sample``, ``elapsed``
(seconds from the start of the timed phase to its last response), ``latency_us`` and
``ttfb_us`` (one integer per request), and ``cpu``: the CPU share (percent of one core) of
this process, of each ``--watch`` process and of the whole machine during the timed phase.
Run in its own process by :mod:`bench.runner`; by hand:
``python -m bench.load --url http://127.0.0.1:8000/v1/chat/completions --body '{...}'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil

from robutler_kernel import eventloop

DONE = b"data: [DONE]\n\n"


@dataclass
class State:
    """Shared by the workers of one run."""

    t0: float
    end: float
    max_requests: int
    started: int = 0
    errors: int = 0
    error_sample: str | None = None
    last: float = 0.0
    latency_us: list[int] = field(default_factory=list)
    ttfb_us: list[int] = field(default_factory=list)


async def one(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> tuple[float, float, str | None]:
    """Send one request; returns (start, first body byte, error or None); ends at return."""
    start = time.perf_counter()
    first = 0.0
    async with session.post(url, data=body) as response:
        if stream:
            tail = b""
            async for chunk in response.content.iter_any():
                if not first:
                    first = time.perf_counter()
                tail = (tail + chunk)[-len(DONE):]
            ok = tail == DONE
        else:
            data = await response.read()
            first = time.perf_counter()
            ok = b'"choices"' in data
        if response.status != 200 or not ok:
            return start, first, f"HTTP {response.status}: {(tail if stream else data)[-300:]!r}"
    return start, first, None


async def worker(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, state: State) -> None:
    while True:
        now = time.perf_counter()
        measured = now >= state.t0
        if now >= state.end or (measured and state.started >= state.max_requests):
            return
        if measured:
            state.started += 1
        try:
            start, first, error = await one(session, url, body, stream)
        except (TimeoutError, aiohttp.ClientError) as exc:
            start, first, error = now, 0.0, f"{type(exc).__name__}: {exc}"
        done = time.perf_counter()
        if not measured:
            continue
        state.last = max(state.last, done)
        if error is not None:
            state.errors += 1
            state.error_sample = state.error_sample or error
            continue
        state.latency_us.append(int((done - start) * 1e6))
        state.ttfb_us.append(int(((first or done) - start) * 1e6))


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds used so far: by this process, each watched one, and the whole machine."""
    total = psutil.cpu_times()
    busy = total.user + total.system + getattr(total, "nice", 0.0) + getattr(total, "irq", 0.0) + getattr(total, "softirq", 0.0)
    out = {"load": time.process_time(), "machine": busy}
    for name, proc in procs.items():
        try:
            # A server with workers (serve --workers) is its supervisor and its children.
            out[name] = sum(t.user + t.system for t in (p.cpu_times() for p in [proc, *proc.children(recursive=True)]))
        except psutil.Error:
            pass
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    body = args.body.encode()
    stream = bool(json.loads(body).get("stream"))
    watched = {}
    for item in filter(None, args.watch.split(",")):
        name, _, pid = item.partition("=")
        watched[name] = psutil.Process(int(pid))
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:
        t0 = time.perf_counter() + args.warmup
        state = State(t0=t0, end=t0 + args.duration, max_requests=args.max_requests)
        marks: dict[str, tuple[float, dict[str, float]]] = {}
        loop = asyncio.get_running_loop()
        loop.call_later(args.warmup, lambda: marks.setdefault("t0", (time.perf_counter(), cpu_seconds(watched))))
        await asyncio.gather(*(worker(session, args.url, body, stream, state) for _ in range(args.concurrency)))
        t1, after = time.perf_counter(), cpu_seconds(watched)
    wall0, before = marks.get("t0", (t0, cpu_seconds(watched)))
    wall = max(t1 - wall0, 1e-9)
    return {
        "requests": len(state.latency_us),
        "errors": state.errors,
        "error_sample": state.error_sample,
        "elapsed": max(state.last - t0, 0.0),
        "latency_us": state.latency_us,
        "ttfb_us": state.ttfb_us,
        "cpu": {k: round(100 * (after[k] - before[k]) / wall, 1) for k in after if k in before},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="the JSON request body")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of the timed phase")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up before it")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap of the timed phase")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--watch", default="", help="name=pid,... whose CPU share to report")
    args = parser.parse_args(argv)
    json.dump(eventloop.run(run(args)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

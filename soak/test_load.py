"""The load test: waves of new connections, then thousands of slow streams at once.

One server (an agent on the openai plugin's direct transport, in front of the fake upstream
pacing every stream at one chunk a second) takes:

- waves of 10/50/100/500/1,000 new connections opened at once, each with one JSON request:
  every one is answered 200 (the listen backlog and ``server.max_concurrent_requests``
  hold a burst);
- 10,000 concurrent streams of 20 s each: every one completes with ``[DONE]`` within 1.5x
  its own duration, the server's peak RSS stays under 2 GiB, and some seconds after the
  round its RSS is back near where it started (issue 14, item 5: see docs/soak.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    CpuShares,
    FakeUpstream,
    RssWatch,
    Summary,
    openai_skill,
    row_from_results,
    serve,
    server_settings,
)
from .loadgen import run_spread

AGENT = "soak"
#: The issue's bounds.
PEAK_RSS_MIB = 2048
SLACK = 1.5
#: The share of the stream round's growth (peak RSS minus RSS before) that must come back
#: within --soak-settle seconds. Not all of it can: Python's small-object allocator keeps a
#: 1-MiB arena mapped while any object lives in it, and a few hundred objects made after the
#: burst (health checks, metrics, timers) keep about half the burst's arenas mapped, while the
#: live data is back where it started (docs/soak.md, measured). What comes back is the dead
#: connections' memory, given back by the reclaimer; a leak, or a reclaimer that never ran,
#: gives back next to nothing.
RSS_GIVEN_BACK = 0.25


def _supports(struct: str, name: str) -> bool:
    """Whether a config struct has a setting (other work in progress adds some)."""
    if struct == "server":
        from robutler_kernel.config import ServerConfig as cls
    else:
        from robutler_plugin_openai.config import OpenAIConfig as cls  # type: ignore[assignment]
    return name in cls.__struct_fields__


@pytest.fixture(scope="module")
def slow_upstream(workdir: Path, soak_options: dict[str, Any]) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(workdir, chunk_delay=1.0)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def load_server(workdir: Path, slow_upstream: FakeUpstream, soak_options: dict[str, Any]) -> Iterator[Any]:
    streams = soak_options["streams"]
    skill = openai_skill(slow_upstream.base_url, timeout=120)
    if _supports("openai", "max_connections"):
        skill["max_connections"] = max(streams + 1000, 16384)
    server = server_settings()
    if soak_options["workers"] > 1:
        server["workers"] = soak_options["workers"]
    if _supports("server", "max_concurrent_requests"):
        server["max_concurrent_requests"] = max(streams + 1000, 16384)
    config = {"server": server, "agents": {AGENT: {"model": "openai/fake-model", "skills": {"openai": skill}}}}
    env = dict(item.split("=", 1) for item in soak_options["server_env"])
    process = serve(workdir, config, name="load.yaml", env=env)
    try:
        # The banner line may go on after the URL (a note about workers): take the URL alone.
        match = re.search(r"http://127\.0\.0\.1:(\d+)", process.url)
        assert match is not None, process.url
        process.url = match.group(0)
        process.port = int(match.group(1))  # type: ignore[attr-defined]
        yield process
    finally:
        process.stop()


def _body(words: int, stream: bool) -> dict[str, Any]:
    text = " ".join(f"w{n}" for n in range(words))
    return {"model": AGENT, "stream": stream, "messages": [{"role": "user", "content": text}]}


def test_waves_of_new_connections(load_server: Any, summary: Summary, soak_options: dict[str, Any]) -> None:
    """Every request of each wave is answered 200, however many connections arrive at once."""
    watch = RssWatch(load_server.pid)
    failures = []
    for size in soak_options["waves"]:
        started = time.monotonic()
        results = run_spread(load_server.port, _body(5, False), size,
                             processes=1 if size <= 200 else soak_options["procs"], timeout=60)
        row = summary.add(row_from_results(f"wave: {size} new connections, JSON", results, peak_rss=watch.peak,
                                           rss_before=watch.before, rss_after=watch.rss(),
                                           seconds=round(time.monotonic() - started, 1)))
        if row.errors:
            failures.append(f"{size}: {row.errors} errors, e.g. {row.error_sample}")
    watch.settle(0)
    assert not failures, failures


def test_concurrent_slow_streams(load_server: Any, slow_upstream: FakeUpstream, summary: Summary,
                                 soak_options: dict[str, Any]) -> None:
    """10,000 streams of one chunk a second for 20 s: all complete, each within 1.5x its own
    duration; peak RSS under 2 GiB; RSS comes back after the round."""
    count, seconds = soak_options["streams"], soak_options["stream_seconds"]
    # The fake sends a role chunk, one chunk per word, a finish chunk, a usage chunk (the
    # kernel asks for usage) and [DONE], a second apart: words + 3 seconds.
    words = max(1, round(seconds) - 3)
    duration = (words + 3) * 1.0
    # A warm round first, so the starting RSS is that of a server that has streamed.
    run_spread(load_server.port, _body(words, True), 20, timeout=duration * 3)
    time.sleep(2)
    watch = RssWatch(load_server.pid)
    shares = CpuShares(server=load_server.pid, upstream=slow_upstream.pid)
    loadgen: dict[str, float] = {}
    started = time.monotonic()
    results = run_spread(load_server.port, _body(words, True), count, processes=soak_options["procs"],
                         ramp=min(soak_options["ramp"], count / 500), timeout=duration * 4, usage=loadgen)
    elapsed = time.monotonic() - started
    cpu = watch.cpu() - watch.cpu_before
    # Where the cores went: the server (each process), the fake upstream, the load generators
    # and the rest of the machine (this process, the kernel's network work, any other load).
    used = shares.stop()
    used["loadgen"], used["loadgen system"] = loadgen.get("cpu", 0.0), loadgen.get("system", 0.0)
    used["rest"] = round(used["machine"] - used["server"] - used["upstream"] - used["loadgen"], 2)
    used["cores"] = round(used["machine"] / elapsed, 2)
    after = watch.settle(soak_options["settle"])
    slow = [r for r in results if r[3] and r[2] > duration * SLACK]
    row = summary.add(row_from_results(
        f"{count} concurrent streams, {duration:g} s each", results, peak_rss=watch.peak,
        rss_before=watch.before, rss_after=after, seconds=round(elapsed, 1),
        note=(f"{len(slow)} over {SLACK}x their {duration:g} s; the server used {cpu:.0f} CPU seconds "
              f"({1000 * cpu / count:.1f} ms a stream); RSS {after - watch.before:+.0f} MiB "
              f"{soak_options['settle']:g} s after the round; CPU seconds of the round's {elapsed:.0f} s: "
              f"server {used['server']:.1f} ({' + '.join(f'{c:.1f}' for c in used['server processes'])}), "
              f"fake upstream {used['upstream']:.1f}, load generators {used['loadgen']:.1f}, "
              f"rest {used['rest']:.1f}, machine {used['machine']:.1f} ({used['cores']:.2f} cores busy)"),
        extra={"over_slack": len(slow), "nominal_seconds": duration, "server_cpu_seconds": round(cpu, 1),
               "cpu": used,
               "ttfb_p99": sorted(r[1] for r in results)[int(len(results) * 0.99) - 1] if results else None}))
    assert row.errors == 0, f"{row.errors} of {count} streams failed, e.g. {row.error_sample}"
    assert not slow, f"{len(slow)} streams took over {SLACK}x {duration:g} s, the slowest {max(r[2] for r in slow):.1f} s"
    assert watch.peak < PEAK_RSS_MIB, f"peak RSS {watch.peak:.0f} MiB"
    given_back = (watch.peak - after) / max(watch.peak - watch.before, 1.0)
    assert given_back >= RSS_GIVEN_BACK, (
        f"RSS {after:.0f} MiB {soak_options['settle']:g} s after the round, {watch.peak:.0f} MiB at the peak, "
        f"{watch.before:.0f} MiB before: {given_back:.0%} of the growth came back")

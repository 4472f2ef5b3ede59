"""Percentiles and the summary of one measured run (pure functions, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``, interpolated linearly between the
    closest ranks (numpy's default); ``None`` for no values. ``values`` need not be sorted."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def merge_runs(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge the raw results of :mod:`bench.load` runs (rounds of one cell) into one summary.

    Throughput is all requests over all measured time; latencies are percentiles over all
    samples (milliseconds); CPU shares are averaged over the rounds."""
    runs = list(runs)
    requests = sum(r["requests"] for r in runs)
    elapsed = sum(r["elapsed"] for r in runs)
    latency = [v for r in runs for v in r["latency_us"]]
    ttfb = [v for r in runs for v in r["ttfb_us"]]
    cpu: dict[str, list[float]] = {}
    for r in runs:
        for name, pct in r.get("cpu", {}).items():
            cpu.setdefault(name, []).append(pct)
    errors = sum(r["errors"] for r in runs)
    return {
        "rounds": len(runs),
        "requests": requests,
        "errors": errors,
        "error_sample": next((r["error_sample"] for r in runs if r.get("error_sample")), None),
        "elapsed_s": round(elapsed, 3),
        "rps": requests / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _ms(percentile(latency, 50)),
        "p99_ms": _ms(percentile(latency, 99)),
        "ttfb_p50_ms": _ms(percentile(ttfb, 50)),
        "ttfb_p99_ms": _ms(percentile(ttfb, 99)),
        "cpu_pct": {name: round(sum(v) / len(v), 1) for name, v in cpu.items()},
    }


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0

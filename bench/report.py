"""The results table, the comparisons with the targets, the machine, the JSON document."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from typing import Any

from .procs import ROOT
from .targets import TARGETS, Target

#: Robutler's throughput as a share of the pass-through's, at least.
THROUGHPUT_RATIO_TARGET = 0.80
#: Robutler's server CPU per request as a multiple of the pass-through's, at most.
CPU_RATIO_TARGET = 1.25
#: Robutler's p50 minus the pass-through's at concurrency 1, in ms, below.
ADDED_P50_TARGET_MS = 1.0

#: Above this CPU share (percent of one core) used by other processes, the report warns.
BUSY_WARNING_PCT = 25.0

COLUMNS = ["scenario", "conc", "target", "req/s", "p50 ms", "p99 ms", "ttfb p50", "ttfb p99",
           "srv cpu%", "srv us/req", "ups cpu%", "gen cpu%", "other%", "rss MiB", "peak MiB", "errors", "vs base"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: text columns left-aligned, numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(row[i] is None or _is_number(row[i]) or str(row[i]).endswith("%") for row in rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table in Markdown."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def comparisons(rows: Sequence[dict[str, Any]], targets: dict[str, Target] = TARGETS) -> list[dict[str, Any]]:
    """Every compared row against its baseline in the same cell: throughput ratio (target
    :data:`THROUGHPUT_RATIO_TARGET`) and added p50 (target :data:`ADDED_P50_TARGET_MS`,
    judged at concurrency 1 only)."""
    index = {(r["scenario"], r["concurrency"], r["target"]): r for r in rows}
    out = []
    for row in rows:
        target = targets.get(row["target"])
        base = index.get((row["scenario"], row["concurrency"], target.baseline)) if target and target.baseline else None
        if base is None:
            continue
        ratio = row["rps"] / base["rps"] if base["rps"] else None
        added = row["p50_ms"] - base["p50_ms"] if row["p50_ms"] is not None and base["p50_ms"] is not None else None
        cost, base_cost = cpu_per_request(row), cpu_per_request(base)
        # The same server with more workers: a scaling figure, not judged by the targets.
        scaling = target.workers != targets[base["target"]].workers if base["target"] in targets else False
        out.append({
            "scenario": row["scenario"], "concurrency": row["concurrency"], "target": row["target"],
            "baseline": base["target"], "throughput_ratio": ratio, "added_p50_ms": added,
            "cpu_per_request_ratio": cost / base_cost if cost and base_cost else None,
            "throughput_ok": None if ratio is None or scaling else ratio >= THROUGHPUT_RATIO_TARGET,
            "cpu_ok": None if not cost or not base_cost or scaling else cost / base_cost <= CPU_RATIO_TARGET,
            "latency_ok": None if added is None or row["concurrency"] != 1 or scaling else added < ADDED_P50_TARGET_MS,
            "scaling": scaling,
        })
    return out


def table_rows(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The rows of the results table (``vs base``: throughput as % of the baseline's)."""
    ratios = {(c["scenario"], c["concurrency"], c["target"]): c["throughput_ratio"] for c in comparisons(rows)}
    out = []
    for r in rows:
        ratio = ratios.get((r["scenario"], r["concurrency"], r["target"]))
        stream = r["scenario"] == "stream"
        cpu = r.get("cpu_pct", {})
        out.append([r["scenario"], r["concurrency"], r["target"], r["rps"], r["p50_ms"], r["p99_ms"],
                    r["ttfb_p50_ms"] if stream else None, r["ttfb_p99_ms"] if stream else None,
                    cpu.get("server"), cpu_per_request(r), cpu.get("upstream"), cpu.get("load"), other_cpu(cpu),
                    r.get("rss_mib"), r.get("rss_peak_mib"), r["errors"],
                    None if ratio is None else f"{100 * ratio:.0f}%"])
    return out


def cpu_per_request(row: dict[str, Any]) -> float | None:
    """The server's CPU time per request in microseconds: unlike req/s, it barely moves
    when other processes compete for the core."""
    server = row.get("cpu_pct", {}).get("server")
    return None if server is None or not row["rps"] else server / 100 / row["rps"] * 1e6


def other_cpu(cpu: dict[str, float]) -> float | None:
    """The CPU share (percent of one core) that processes outside the benchmark used."""
    if "machine" not in cpu:
        return None
    return max(0.0, cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine"))


def verdicts(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per comparison, with the targets next to the figures."""
    lines = []
    for c in comparisons(rows):
        where = f"{c['scenario']:<6} c={c['concurrency']:<3} {c['target']} vs {c['baseline']}:"
        ratio = c["throughput_ratio"]
        if c["scaling"]:
            text = f"{where} throughput x{ratio:.2f}" if ratio is not None else f"{where} no throughput"
            if c["cpu_per_request_ratio"] is not None:
                text += f"; server CPU per request x{c['cpu_per_request_ratio']:.2f}"
            if c["added_p50_ms"] is not None:
                text += f"; p50 {c['added_p50_ms']:+.2f} ms"
            lines.append(text)
            continue
        text = f"{where} throughput {100 * ratio:.1f}% (target >= {100 * THROUGHPUT_RATIO_TARGET:.0f}%: {_ok(c['throughput_ok'])})" if ratio is not None else f"{where} no throughput"
        if c["cpu_per_request_ratio"] is not None:
            text += f"; server CPU per request x{c['cpu_per_request_ratio']:.2f} (target <= {CPU_RATIO_TARGET:g}: {_ok(c['cpu_ok'])})"
        if c["concurrency"] == 1 and c["added_p50_ms"] is not None:
            text += f"; added p50 {c['added_p50_ms']:+.2f} ms (target < {ADDED_P50_TARGET_MS:g} ms: {_ok(c['latency_ok'])})"
        lines.append(text)
    return lines


def _ok(flag: bool | None) -> str:
    return "-" if flag is None else "met" if flag else "MISSED"


def render(rows: Sequence[dict[str, Any]]) -> str:
    """The table, the verdicts and any error samples, as printed."""
    text = format_table(COLUMNS, table_rows(rows)) + "\n\n" + "\n".join(verdicts(rows))
    errors = [f"{r['target']} {r['scenario']} c={r['concurrency']}: {r['error_sample']}" for r in rows if r.get("error_sample")]
    if errors:
        text += "\n\nerrors:\n  " + "\n  ".join(errors)
    noise = [v for r in rows if (v := other_cpu(r.get("cpu_pct", {}))) is not None]
    if noise and max(noise) > BUSY_WARNING_PCT:
        text += (f"\n\nWARNING: other processes used up to {max(noise):.0f}% of a core during the runs "
                 "(column other%): the figures are not reliable; rerun on an idle machine.")
    return text


def machine() -> dict[str, Any]:
    """The machine and software the numbers come from."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    versions = {}
    for dist in ("robutler-kernel", "robutler-plugin-openai", "hypercorn", "starlette", "httpx2", "httpx", "openai", "aiohttp", "msgspec", "h11"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        commit = ""
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": model,
            "cores": os.cpu_count(), "commit": commit, "versions": versions}

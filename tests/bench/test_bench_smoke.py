"""Smoke tests of the benchmark harness's pure helpers (``python -m bench``).

Not a benchmark: no timing is asserted. They catch a broken ``bench`` import, a config the
kernel would reject, and wrong percentile or table arithmetic."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `bench`

from bench import procs, report, stats
from bench.cli import build_parser
from bench.runner import plan_cell
from bench.targets import TARGETS, chat_body, select, server_config, to_yaml
from robutler_kernel.config import parse_config


def test_percentile_interpolates_between_ranks() -> None:
    assert stats.percentile([], 50) is None
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([4, 1, 3, 2], 50) == 2.5
    assert stats.percentile(list(range(101)), 99) == 99
    assert stats.percentile([0, 10], 99) == pytest.approx(9.9)
    with pytest.raises(ValueError):
        stats.percentile([1], 101)


def test_merge_runs_sums_requests_over_time() -> None:
    runs = [
        {"requests": 100, "errors": 0, "elapsed": 1.0, "latency_us": [1000] * 100, "ttfb_us": [500] * 100,
         "cpu": {"server": 90.0}},
        {"requests": 300, "errors": 1, "elapsed": 1.0, "latency_us": [3000] * 300, "ttfb_us": [500] * 300,
         "cpu": {"server": 100.0}, "error_sample": "HTTP 502"},
    ]
    merged = stats.merge_runs(runs)
    assert merged["rps"] == 200
    assert merged["p50_ms"] == 3.0 and merged["ttfb_p99_ms"] == 0.5
    assert merged["errors"] == 1 and merged["error_sample"] == "HTTP 502"
    assert merged["cpu_pct"] == {"server": 95.0}


def row(target: str, concurrency: int, rps: float, p50: float) -> dict:
    return {"scenario": "json", "concurrency": concurrency, "target": target, "rps": rps, "p50_ms": p50,
            "p99_ms": p50 * 2, "ttfb_p50_ms": p50, "ttfb_p99_ms": p50, "errors": 0, "error_sample": None,
            "cpu_pct": {"server": 99.0, "load": 40.0, "machine": 150.0}}


def test_comparisons_and_table() -> None:
    rows = [row("robutler", 1, 800, 1.5), row("passthrough", 1, 1000, 1.0),
            row("robutler", 64, 1500, 40), row("passthrough", 64, 2500, 25), row("direct", 64, 9000, 7)]
    comp = {(c["target"], c["concurrency"]): c for c in report.comparisons(rows)}
    assert set(comp) == {("robutler", 1), ("robutler", 64)}
    assert comp["robutler", 1]["throughput_ratio"] == 0.8 and comp["robutler", 1]["throughput_ok"]
    assert comp["robutler", 1]["added_p50_ms"] == 0.5 and comp["robutler", 1]["latency_ok"]
    assert comp["robutler", 64]["throughput_ok"] is False and comp["robutler", 64]["latency_ok"] is None
    text = report.render(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["scenario", "conc", "target"]
    assert "80%" in lines[2] and "MISSED" in text and "WARNING" not in text
    assert report.other_cpu({"server": 99.0, "load": 40.0, "machine": 150.0}) == pytest.approx(11.0)
    assert report.markdown_table(report.COLUMNS, report.table_rows(rows)).count("\n") == len(rows) + 1


def test_rss_counts_a_server_with_its_worker_processes() -> None:
    """A server's memory is its process and its workers': a child holding 64 MiB adds
    about that much, now and at the peak; a process that is gone has no figure."""
    alone = procs.rss_mib(os.getpid())
    assert alone is not None and 5 < alone[0] <= alone[1]
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; b = bytearray(64 << 20); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        both = procs.rss_mib(os.getpid())
        assert both is not None
        assert both[0] - alone[0] > 60 and both[1] - alone[1] > 60
    finally:
        child.communicate("")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert procs.rss_mib(gone.pid) is None


def test_format_table_aligns_numbers_right() -> None:
    text = report.format_table(["name", "n"], [["a", 5], ["bbb", 1234.5], ["c", None]])
    assert text.splitlines() == ["name     n", "----  ----", "a        5", "bbb   1234", "c        -"]


@pytest.mark.parametrize("name", [n for n, t in TARGETS.items() if t.kind == "robutler"])
def test_generated_configs_are_valid_kernel_configs(name: str) -> None:
    target = TARGETS[name]
    config = server_config(target, "http://127.0.0.1:1234/v1", port=8123, metrics_port=9123)
    parsed = parse_config(to_yaml(config), source=f"{name}.yaml")
    assert parsed.server.port == 8123 and parsed.server.metrics_port == 9123
    assert list(parsed.agents) == [target.model]
    assert target.request_body("stream")["stream"] is True


def test_target_selection_and_run_order() -> None:
    targets = select(["direct", "robutler"])
    assert [t.name for t in targets] == ["robutler", "passthrough", "direct"]
    order = [t.name for t in plan_cell(targets, rounds=2)]
    assert order == ["robutler", "passthrough", "passthrough", "robutler", "direct"]
    with pytest.raises(ValueError):
        select(["nope"])
    assert "stream" not in chat_body("m", "json")


def test_cli_options() -> None:
    args = build_parser().parse_args(["--concurrency", "1,8", "--scenarios", "stream", "--quick", "--json", "x.json"])
    assert args.concurrency == [1, 8] and args.scenarios == ["stream"] and args.quick
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--scenarios", "xml"])


def test_passthrough_app_builds() -> None:
    from bench.passthrough import build_app

    paths = {route.path for route in build_app("http://127.0.0.1:9/v1").routes}
    assert "/v1/chat/completions" in paths


async def test_load_generator_runs_against_the_fake_upstream() -> None:
    pytest.importorskip("aiohttp")
    import json

    from bench import load
    from robutler_kernel.testing.fake_openai import FakeOpenAI

    async with FakeOpenAI() as fake:
        for scenario in ("json", "stream"):
            args = argparse.Namespace(
                url=fake.base_url + "/chat/completions", body=json.dumps(chat_body("fake-model", scenario)),
                concurrency=2, duration=0.2, warmup=0.05, max_requests=20, timeout=5.0, watch="",
            )
            result = await load.run(args)
            assert result["errors"] == 0, result["error_sample"]
            assert 0 < result["requests"] <= 20 and len(result["ttfb_us"]) == result["requests"]

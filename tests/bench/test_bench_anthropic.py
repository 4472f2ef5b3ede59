"""Smoke tests of ``python -m bench.targets_anthropic``'s pure parts (not a benchmark: no
timing is asserted): its agent config is one the kernel accepts, and its report's ratios."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `bench`

from bench.targets import server_config, to_yaml
from bench.targets_anthropic import NAME, anthropic_target, report
from robutler_kernel.config import parse_config


def test_the_agent_config_points_at_the_anthropic_upstream() -> None:
    target = anthropic_target("http://127.0.0.1:4321")
    assert (target.name, target.baseline) == (NAME, "robutler-sdk")
    config = server_config(target, "http://127.0.0.1:1234/v1", port=8123, metrics_port=9123)
    parsed = parse_config(to_yaml(config), source="anthropic.yaml")
    agent = parsed.agents["bench"]
    assert agent.model == "anthropic/fake-model"
    assert agent.skills["anthropic"] == {"base_url": "http://127.0.0.1:4321", "api_key": "bench-key"}


def row(target: str, rps: float, p50: float) -> dict[str, object]:
    return {"scenario": "stream", "concurrency": 64, "target": target, "rps": rps, "p50_ms": p50,
            "errors": 0, "cpu_pct": {"server": 100.0}}


def test_report_gives_the_anthropic_to_openai_ratio() -> None:
    text = report([row("robutler-sdk", 1000, 10.0), row(NAME, 750, 12.0)])
    assert "75%" in text.splitlines()[2]
    assert "anthropic/openai throughput 75.0% (target >= 80%: MISSED)" in text
    assert "target >= 80%: met" in report([row("robutler-sdk", 1000, 10.0), row(NAME, 900, 12.0)])

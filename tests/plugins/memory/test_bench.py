"""``python -m bench.memory_bench`` stays runnable (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import robutler_plugin_memory as memory
import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.config import parse_config

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # the repository root: `bench`

from bench import memory_bench  # noqa: E402

from .helpers import REDIS_URL  # noqa: E402


def test_the_config_is_one_the_kernel_accepts() -> None:
    config = parse_config(memory_bench.config_text(REDIS_URL, "robutler-test:bench:"))
    assert set(config.agents) == set(memory_bench.TURN_TARGETS)
    kernel = Kernel(config, plugins=[scripted, memory], discover=False)
    skills = {name: [s.name for s in kernel.agent(name).skills] for name in config.agents}  # type: ignore[union-attr]
    assert "short_term_memory" not in skills["none"]
    assert all("short_term_memory" in skills[t] for t in memory_bench.TURN_TARGETS if t != "none")


def test_tables() -> None:
    rows = [memory_bench.Throughput("none", 1, 100, 1.0, [0.001] * 100),
            memory_bench.Throughput("redis", 1, 50, 1.0, [0.002] * 50)]
    table = memory_bench.throughput_table(rows)
    assert "| redis | 1 | 50 | 0.50x | 2.00 | 2.00 | 0 | - |" in table
    turns = memory_bench.turns_table({"memory": ([0.001, 0.001], [0.003, 0.003])}, 100)
    assert "| memory | 1.00 | 3.00 | 3.00x | NO |" in turns


def test_a_tiny_run_prints_both_tables() -> None:
    args = ["--duration", "0.2", "--warmup", "0.1", "--rounds", "1", "--concurrency", "2",
            "--conversations", "2", "--turns", "3", "--redis-url", REDIS_URL]
    result = subprocess.run([sys.executable, "-m", "bench.memory_bench", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| redis | 2 |" in result.stdout and "| client-history | 2 |" in result.stdout
    assert "turn 3 / turn 1" in result.stdout and "| redis-unbounded |" in result.stdout


def test_an_unknown_target_is_refused_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        memory_bench.main(["--targets", "none,postgres"])
    assert info.value.code == 2
    assert "--targets: unknown postgres (choose from none, memory, redis, client-history)" in capsys.readouterr().err

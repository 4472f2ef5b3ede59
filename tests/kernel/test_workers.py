"""``robutler-kernel serve --workers N``: worker processes on one port, supervised, with the
metrics of all of them served once (``robutler_kernel.workers``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from robutler_kernel.cli import build_parser
from robutler_kernel.config import parse_config
from robutler_kernel.testing import ServeProcess
from robutler_specs import ConfigError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="--workers needs a POSIX system")

CONFIG = "server: {metrics_port: 0}\nagents:\n  echo: {model: scripted/echo}\n"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    config = tmp_path / "robutler.yaml"
    config.write_text(CONFIG)
    with ServeProcess(config, plugins=["scripted"], args=["--workers", "2", "--metrics-port", "0"]) as server:
        yield server


def workers_of(server: ServeProcess) -> list[psutil.Process]:
    return psutil.Process(server.pid).children()


def metrics_url(server: ServeProcess) -> str:
    return next(line.split("metrics: ", 1)[1].strip() for line in server.output if "metrics: " in line)


def sample(server: ServeProcess, name: str, **labels: str) -> float:
    """A sample of the metrics the supervisor serves (0 when absent)."""
    text = httpx.get(metrics_url(server)).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def pid_answering(server: ServeProcess) -> int:
    """The pid of the worker that answers a request on a new connection."""
    reply = httpx.get(f"{server.url}/health/detailed", headers={"connection": "close"})
    return int(reply.json()["system"]["pid"])


def wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_workers_share_the_port_and_every_request_is_counted_once(served: ServeProcess) -> None:
    workers = {p.pid for p in workers_of(served)}
    assert len(workers) == 2 and served.pid not in workers
    assert any("2 worker processes" in line for line in served.output)
    # Which worker accepts a new connection is the OS's choice: ask until both answered.
    seen: set[int] = set()
    health = 0
    while seen != workers and health < 400:
        seen.add(pid_answering(served))
        health += 1
    assert seen == workers
    for _ in range(25):
        reply = httpx.post(f"{served.url}/echo/chat/completions", json=CHAT, headers={"connection": "close"})
        assert reply.json()["choices"][0]["message"]["content"] == "You said: hi"
    assert sample(served, "robutler_requests_total", agent="echo", method="POST", status="200") == 25
    assert sample(served, "robutler_requests_total", agent="-", method="GET", status="200") == health
    assert sample(served, "robutler_request_duration_seconds_count", agent="echo") == 25
    assert sample(served, "robutler_active_connections") == 0  # a live sum, not one series per worker
    assert sample(served, "robutler_tokens_total", agent="echo", type="prompt") > 0


def test_sigint_stops_every_worker_and_removes_the_metrics_folder(served: ServeProcess) -> None:
    workers = workers_of(served)
    folder = Path(workers[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
    assert folder.is_dir() and any(folder.iterdir())
    assert all(Path(p.environ()["PROMETHEUS_MULTIPROC_DIR"]) == folder for p in workers)
    assert "PROMETHEUS_MULTIPROC_DIR" not in psutil.Process(served.pid).environ()
    assert served.stop() == 0
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    assert not folder.exists()


def test_a_killed_worker_is_replaced_and_its_counts_stay(served: ServeProcess) -> None:
    for _ in range(10):
        httpx.post(f"{served.url}/echo/chat/completions", json=CHAT, headers={"connection": "close"})
    before = {p.pid for p in workers_of(served)}
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len({p.pid for p in workers_of(served)} - before) == 1 and len(workers_of(served)) == 2)
    replacement = ({p.pid for p in workers_of(served)} - before).pop()
    wait_for(lambda: any("worker" in line and str(victim) in line and "starting another" in line for line in served.output))
    # The replacement serves: new connections reach it.
    wait_for(lambda: pid_answering(served) == replacement)
    for _ in range(5):
        httpx.post(f"{served.url}/echo/chat/completions", json=CHAT, headers={"connection": "close"})
    # The dead worker's counts stay in the sum; its live gauge left it.
    assert sample(served, "robutler_requests_total", agent="echo", method="POST", status="200") == 15
    assert sample(served, "robutler_active_connections") == 0
    assert served.stop() == 0


def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    # The tool module fails to import in the workers (whose environment has the metrics
    # folder), so no worker can start.
    (tmp_path / "worker_only_failure.py").write_text(
        "import os\n"
        "if os.environ.get('PROMETHEUS_MULTIPROC_DIR'):\n"
        "    raise RuntimeError('this worker cannot start')\n"
        "def ping() -> str:\n    '''Answer pong.'''\n    return 'pong'\n"
    )
    config = tmp_path / "robutler.yaml"
    config.write_text("agents:\n  echo: {model: scripted/echo, tools: ['worker_only_failure:ping']}\n")
    result = subprocess.run(
        [sys.executable, "-m", "robutler_kernel.cli", "serve", "-c", str(config), "--port", "0", "--metrics-port", "0",
         "--workers", "2"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "ROBUTLER_LOAD_PLUGINS": "scripted"},
    )
    assert result.returncode == 1
    assert "this worker cannot start" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: worker ") and "before it served" in last, result.stderr
    assert "Robutler serving" not in result.stdout


def test_workers_is_a_setting_and_an_option() -> None:
    assert parse_config("server: {workers: 3}\n").server.workers == 3
    assert parse_config("").server.workers == 1
    with pytest.raises(ConfigError, match="workers"):
        parse_config("server: {workers: 0}\n")
    assert build_parser().parse_args(["serve", "--workers", "4"]).workers == 4
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--workers", "0"])

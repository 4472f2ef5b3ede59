"""The soak suite's options, shared fixtures and summary table.

Not part of the default test run (``testpaths`` is ``tests``): ``tox -e soak`` or
``scripts/soak`` runs it; ``pytest soak --help`` lists the ``--soak-*`` options.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import FakeUpstream, PostgresInstance, RedisInstance, Summary, share_nice
from .loadgen import raise_nofile

SUMMARY = Summary()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("soak", "the soak suite (soak/)")
    group.addoption("--soak-streams", type=int, default=10_000, help="concurrent slow streams (default 10000)")
    group.addoption("--soak-stream-seconds", type=float, default=20.0,
                    help="how long each slow stream lasts, one chunk a second (default 20)")
    group.addoption("--soak-ramp", type=float, default=15.0,
                    help="seconds over which the streams are opened (default 15: all still open at once)")
    group.addoption("--soak-workers", type=int, default=2,
                    help="server.workers of the load test's server (default 2, one per core here)")
    group.addoption("--soak-server-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable of the load test's server (e.g. PYTHONMALLOC=malloc)")
    group.addoption("--soak-waves", default="10,50,100,500,1000",
                    help="sizes of the waves of new connections (default 10,50,100,500,1000)")
    group.addoption("--soak-loadgen-procs", type=int, default=2,
                    help="load generator processes for the big rounds (default 2)")
    group.addoption("--soak-settle", type=float, default=45.0,
                    help="seconds after the stream round before the server's RSS is read again (default 45)")
    group.addoption("--soak-minutes", type=float, default=1.0,
                    help="length of the mixed-load phases (faults, restarts, disconnects), in minutes (default 1)")
    group.addoption("--soak-fuzz-examples", type=int, default=50,
                    help="schemathesis / hypothesis examples per route or type (default 50)")
    group.addoption("--soak-nice", type=int, default=0,
                    help="nice value for the suite and every process it starts; e.g. -10 (root) keeps other "
                         "work on a shared machine from distorting the load figures")
    group.addoption("--soak-json", default="soak-summary.json", help="where to write the summary (default ./soak-summary.json)")


def pytest_configure(config: pytest.Config) -> None:
    nice = config.getoption("--soak-nice", default=0)
    if nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)  # inherited by every process started from here
        share_nice()  # and the session's own weight (the servers' sessions get theirs when started)


@pytest.fixture(scope="session")
def soak_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    opt = request.config.getoption
    return {
        "streams": opt("--soak-streams"), "stream_seconds": opt("--soak-stream-seconds"),
        "waves": [int(n) for n in opt("--soak-waves").split(",") if n.strip()],
        "procs": opt("--soak-loadgen-procs"), "ramp": opt("--soak-ramp"), "workers": opt("--soak-workers"),
        "server_env": opt("--soak-server-env"), "settle": opt("--soak-settle"),
        "minutes": opt("--soak-minutes"), "examples": opt("--soak-fuzz-examples"),
    }


@pytest.fixture(scope="session")
def summary() -> Summary:
    return SUMMARY


@pytest.fixture(scope="session", autouse=True)
def _open_files() -> None:
    # Every server and load generator the suite starts inherits it (root may raise the hard limit).
    raise_nofile(65536)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="robutler-soak-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def fake_upstream(workdir: Path) -> Iterator[FakeUpstream]:
    """A zero-latency fake OpenAI upstream (JSON at once, streams unpaced)."""
    fake = FakeUpstream(workdir)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def redis_instance(workdir: Path) -> Iterator[RedisInstance]:
    try:
        instance = RedisInstance(workdir)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def postgres_instance() -> Iterator[PostgresInstance]:
    try:
        instance = PostgresInstance()
    except (RuntimeError, OSError, KeyError) as exc:
        pytest.skip(f"no throwaway PostgreSQL: {exc}")
    yield instance
    instance.remove()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not SUMMARY.rows:
        return
    terminalreporter.section("soak summary")
    terminalreporter.write_line(SUMMARY.table())
    path = Path(config.getoption("--soak-json"))
    path.write_text(json.dumps(SUMMARY.to_json(), indent=1) + "\n")
    terminalreporter.write_line(f"\nwrote {path} (markdown: python -m soak.report {path})")

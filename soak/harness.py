"""What the soak scenarios share: the processes they start (a served kernel, a fake upstream,
throwaway Redis and PostgreSQL instances), the server's memory over time, and the summary
table every scenario adds its row to.

Everything listens on loopback ports picked free at start; the Redis and PostgreSQL
instances are the suite's own (a temporary directory each, never the system services).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from robutler_kernel.testing import ServeProcess
from robutler_kernel.testing.ports import closed_port

MiB = 1024 * 1024


# -- the summary table ------------------------------------------------------------------


@dataclass
class Row:
    """One scenario's line in the summary (latencies in seconds, memory in MiB)."""

    scenario: str
    requests: int
    ok: int
    errors: int
    p50: float | None = None
    p99: float | None = None
    max: float | None = None
    peak_rss: float | None = None
    rss_before: float | None = None
    rss_after: float | None = None
    seconds: float = 0.0
    note: str = ""
    error_sample: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def row_from_results(scenario: str, results: list[list[Any]], **kw: Any) -> Row:
    """A row from load generator results (``[start, ttfb, total, ok, error]``)."""
    totals = [r[2] for r in results if r[3]]
    errors = [r[4] for r in results if not r[3]]
    return Row(scenario, len(results), len(totals), len(errors), percentile(totals, 0.5),
               percentile(totals, 0.99), max(totals) if totals else None,
               error_sample=errors[0] if errors else None, **kw)


class Summary:
    """The rows of a run, printed as a table and written as JSON."""

    COLUMNS = ("scenario", "requests", "ok", "errors", "p50", "p99", "max", "peak RSS", "RSS before", "RSS after")

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.started = time.time()

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    @staticmethod
    def _cells(row: Row) -> list[str]:
        def sec(v: float | None) -> str:
            return "-" if v is None else (f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s")

        def mib(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f} MiB"

        return [row.scenario, str(row.requests), str(row.ok), str(row.errors), sec(row.p50), sec(row.p99),
                sec(row.max), mib(row.peak_rss), mib(row.rss_before), mib(row.rss_after)]

    def table(self, markdown: bool = False) -> str:
        cells = [list(self.COLUMNS), *(self._cells(r) for r in self.rows)]
        if markdown:
            lines = ["| " + " | ".join(c) + " |" for c in cells]
            lines.insert(1, "|" + "|".join("---" for _ in self.COLUMNS) + "|")
            return "\n".join(lines)
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.COLUMNS))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                 for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        notes = [f"  {r.scenario}: {r.note}" for r in self.rows if r.note]
        samples = [f"  {r.scenario}: {r.error_sample[:300]}" for r in self.rows if r.error_sample]
        return "\n".join(lines + (["notes:", *notes] if notes else []) + (["first error:", *samples] if samples else []))

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "seconds": round(time.time() - self.started, 1),
                "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
                            "python": sys.version.split()[0]},
                "rows": [asdict(r) for r in self.rows]}


# -- memory ---------------------------------------------------------------------------------


class RssWatch:
    """Samples a process's resident set size on a thread (``interval`` seconds apart)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.before = self.rss()
        self.peak = self.before
        self.cpu_before = self.cpu()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)
        self._thread.start()

    def rss(self) -> float:
        """The resident set size now, in MiB, of the process and its children (a server's
        workers); 0 once it is gone."""
        try:
            procs = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total / MiB

    def cpu(self) -> float:
        """CPU seconds (user + system) used so far by the process and its children."""
        try:
            procs = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    def settle(self, seconds: float) -> float:
        """Wait ``seconds`` (sampling the peak meanwhile), then stop; returns the RSS then."""
        time.sleep(seconds)
        self._stop.set()
        self._thread.join()
        return self.rss()


class CpuShares:
    """Where the machine's cores went between its start and :meth:`stop`: the CPU seconds
    (user + system) of each process of each named tree (``server=pid``: the process and its
    children, a server's workers apart), and of the whole machine (every core's busy time)."""

    def __init__(self, **trees: int) -> None:
        self.trees = {name: psutil.Process(pid) for name, pid in trees.items()}
        self.before = self._sample()
        self.machine_before = self._machine()

    @staticmethod
    def _machine() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "steal", 0.0) \
            - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)

    def _sample(self) -> dict[tuple[str, int], tuple[float, float]]:
        out: dict[tuple[str, int], tuple[float, float]] = {}
        for name, root in self.trees.items():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                out[(name, proc.pid)] = (times.user, times.system)
        return out

    def stop(self) -> dict[str, Any]:
        """``{name: seconds, name + " processes": [seconds of each, busiest first], name +
        " system": the kernel's part of the seconds, "machine": seconds}`` since the start."""
        now = self._sample()
        machine = self._machine() - self.machine_before
        out: dict[str, Any] = {}
        for name in self.trees:
            used = {key: (user - self.before.get(key, (0.0, 0.0))[0], system - self.before.get(key, (0.0, 0.0))[1])
                    for key, (user, system) in now.items() if key[0] == name}
            each = sorted((round(user + system, 2) for user, system in used.values()), reverse=True)
            out[name] = round(sum(each), 2)
            out[name + " processes"] = each
            out[name + " system"] = round(sum(system for _, system in used.values()), 2)
        out["machine"] = round(machine, 2)
        return out


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    return closed_port()


def wait_port(port: int, timeout: float = 30.0, what: str = "a server") -> None:
    """Wait until something accepts connections on ``127.0.0.1:port``."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g} s") from None
            time.sleep(0.05)


def share_nice(pid: int | str = "self") -> None:
    """Give the session of ``pid`` the nice value of this process, for the whole session.

    Linux schedules each session as one group (``sched_autogroup``): CPU is shared between
    busy sessions first, and a process's nice value only counts among the processes of its
    own session. A server or fake started in a new session would then get a busy session's
    share of the cores whatever ``--soak-nice`` says, and two workers of one server would
    share one. Writing the nice value to ``/proc/PID/autogroup`` gives the session that
    weight; nothing happens where there are no autogroups or the value is 0."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice == 0:
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as autogroup:
            autogroup.write(str(nice))
    except OSError:
        pass


class Child:
    """A child process in its own process group (and session: see :func:`share_nice`), its
    output in a file."""

    def __init__(self, argv: list[str], log: Path, env: Mapping[str, str] | None = None,
                 user: str | None = None) -> None:
        self.log = log
        self._out = open(log, "wb")
        kw: dict[str, Any] = {}
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            kw.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        self.popen = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env={**os.environ, **(env or {})}, start_new_session=True, **kw)
        share_nice(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(grace)
            except ProcessLookupError:
                pass
        self._out.close()


class FakeUpstream(Child):
    """The test kit's fake OpenAI server as a process; ``chunk_delay`` paces every stream."""

    def __init__(self, workdir: Path, chunk_delay: float = 0.0) -> None:
        self.port = free_port()
        super().__init__([sys.executable, "-m", "robutler_kernel.testing.fake_openai", "--port", str(self.port),
                          "--chunk-delay", str(chunk_delay)], workdir / f"fake-{self.port}.log")
        wait_port(self.port, what="the fake upstream")
        self.base_url = f"http://127.0.0.1:{self.port}/v1"


def write_config(workdir: Path, config: Mapping[str, Any], name: str = "robutler.yaml") -> Path:
    """Write a config (JSON is YAML) into ``workdir``."""
    path = workdir / name
    path.write_text(json.dumps(config, indent=1))
    return path


def serve(workdir: Path, config: Mapping[str, Any], *, env: Mapping[str, str] | None = None,
          name: str = "robutler.yaml") -> ServeProcess:
    """``robutler-kernel serve`` on ``config`` (its port chosen free), started and listening."""
    process = ServeProcess(write_config(workdir, config, name), env=env, cwd=workdir, timeout=60)
    share_nice(process.pid)
    return process


def server_settings(**extra: Any) -> dict[str, Any]:
    """The ``server:`` section of the suite's servers: no metrics port, quiet logs."""
    return {"metrics_port": None, "log_level": "warning", **extra}


def openai_skill(base_url: str, **extra: Any) -> dict[str, Any]:
    """The openai skill's settings pointing at a fake upstream."""
    return {"api_key": "soak", "base_url": base_url, **extra}


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


# -- throwaway Redis and PostgreSQL --------------------------------------------------------


def which(name: str, extra: Iterable[str] = ()) -> str | None:
    """``name`` on the PATH or in one of the ``extra`` folders."""
    found = shutil.which(name)
    if found:
        return found
    for folder in extra:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return None


class RedisInstance:
    """A ``redis-server`` of our own on a free port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child: Child | None = None
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self) -> None:
        self.child = Child([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", str(self.workdir)], self.workdir / f"redis-{self.port}.log")
        wait_port(self.port, what="redis-server")

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(signal.SIGKILL)
            self.child = None


def _pg_bin() -> Path | None:
    found = which("initdb", sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True))
    return Path(found).resolve().parent if found else None


class PostgresInstance:
    """A throwaway PostgreSQL cluster (``initdb`` into a temporary directory, ``postgres`` on
    a free port), run as the ``postgres`` user when we are root (it refuses to run as root)."""

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL's initdb is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = Path(tempfile.mkdtemp(prefix="robutler-soak-pg-"))
        self.data = self.dir / "data"
        owner: dict[str, Any] = {}
        if self.user is not None:  # PostgreSQL refuses to run as root
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            owner = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        done = subprocess.run([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                               "-E", "UTF8", "--no-sync"], capture_output=True, cwd=self.dir, **owner)
        self.child: Child | None = None
        try:
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-500:]}")
            self.start()
        except BaseException:
            self.remove()  # never leave a half-started cluster behind
            raise

    def start(self) -> None:
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
                "-k", str(self.dir), "-c", "fsync=off", "-c", "max_connections=200",
                "-c", "shared_buffers=32MB"]
        self.child = Child(argv, self.dir / "postgres.log", user=self.user)
        deadline = time.monotonic() + 30
        assert self.child is not None
        while subprocess.run([str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.child.popen.poll() is not None:
                raise RuntimeError(f"postgres did not start:\n{self.child.tail()}")
            time.sleep(0.1)

    def stop(self, fast: bool = True) -> None:
        """Stop the server: SIGQUIT (an immediate shutdown, as a crash) or SIGINT (fast)."""
        if self.child is not None:
            self.child.stop(signal.SIGQUIT if fast else signal.SIGINT, grace=20)
            self.child = None

    def remove(self) -> None:
        self.stop(fast=False)
        shutil.rmtree(self.dir, ignore_errors=True)


__all__ = ["Child", "CpuShares", "FakeUpstream", "PostgresInstance", "RedisInstance", "Row", "RssWatch", "Summary",
           "get_json", "openai_skill", "percentile", "row_from_results", "serve", "server_settings", "share_nice",
           "wait_port", "write_config"]


# -- a steady client load -------------------------------------------------------------------


@dataclass
class Outcome:
    """One request of a :class:`ClientLoad`: when it started (seconds since the load
    began), its status (0: no answer), how long it took and what was wrong."""

    at: float
    status: int
    seconds: float
    error: str | None


class ClientLoad:
    """``clients`` threads sending requests to ``url`` until stopped; ``body(n)`` makes the
    n-th request's JSON body, ``headers(n)`` its headers. A streamed answer is good when
    it ends with ``data: [DONE]`` and no ``error`` event; a JSON one when it has choices."""

    def __init__(self, url: str, body: Any, *, headers: Any = None, clients: int = 4, timeout: float = 30.0) -> None:
        import itertools

        self.url, self.body, self.headers, self.timeout = url, body, headers or (lambda n: {}), timeout
        self.outcomes: list[Outcome] = []
        self.t0 = time.monotonic()
        self._count = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                n = next(self._count)
                body = self.body(n)
                started = time.monotonic()
                status, error = 0, None
                try:
                    response = client.post(self.url, json=body, headers=self.headers(n))
                    status = response.status_code
                    text = response.text
                    if status != 200:
                        error = f"{status}: {text[:300]}"
                    elif body.get("stream"):
                        tail = text.rstrip()[-600:]
                        if not tail.endswith("data: [DONE]") or '"error"' in tail:
                            error = f"stream: ...{tail[-300:]}"
                    elif '"choices"' not in text:
                        error = f"no choices: {text[:300]}"
                except Exception as exc:  # a client-side failure is an outcome, not a crash
                    error = f"{type(exc).__name__}: {exc}"
                self.outcomes.append(Outcome(started - self.t0, status, time.monotonic() - started, error))

    def now(self) -> float:
        return time.monotonic() - self.t0

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 10)
        return self.outcomes


def load_row(scenario: str, outcomes: list[Outcome], **kw: Any) -> Row:
    """A summary row from :class:`ClientLoad` outcomes (``ok``: answered 200 and whole)."""
    good = [o.seconds for o in outcomes if o.error is None]
    bad = [o.error for o in outcomes if o.error is not None]
    return Row(scenario, len(outcomes), len(good), len(bad), percentile(good, 0.5), percentile(good, 0.99),
               max(good, default=None), error_sample=bad[0] if bad else None, **kw)

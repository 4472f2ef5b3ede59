"""Starting, pinning, probing and stopping the benchmark's processes.

Every process starts in its own session (process group) and is stopped with its group:
SIGTERM, then SIGKILL after a grace period. :class:`ProcessSet` stops them all on exit,
whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class CpuPlan:
    """Which cores each role runs on (``None``: not pinned)."""

    server: set[int] | None
    upstream: set[int] | None
    load: set[int] | None

    @property
    def all(self) -> set[int] | None:
        """Every core of the plan (a server with several workers runs on all of them)."""
        if self.server is None:
            return None
        return self.server | (self.upstream or set()) | (self.load or set())

    def describe(self) -> str:
        if self.server is None:
            return "not pinned"
        return (f"server under test on core {_cores(self.server)}; fake upstream on core "
                f"{_cores(self.upstream)}; load generator and harness on core {_cores(self.load)}")


def _cores(cores: set[int] | None) -> str:
    return ",".join(map(str, sorted(cores or ()))) or "-"


def cpu_plan(pin: bool = True) -> CpuPlan:
    """The server under test gets one core to itself; the fake upstream the next one; the
    load generator the rest (with two cores it shares the upstream's core)."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return CpuPlan(None, None, None)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return CpuPlan(None, None, None)
    rest = set(cores[2:]) or {cores[1]}
    return CpuPlan({cores[0]}, {cores[1]}, rest)


#: The nice value of every process the benchmark starts (``--nice``; below 0 needs root).
NICE = 0


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def pin(pid: int, cores: set[int] | None) -> None:
    """Pin every thread of ``pid`` to ``cores`` and give it the :data:`NICE` value (new
    threads inherit both)."""
    for tid in _threads(pid):
        try:
            if cores is not None:
                os.sched_setaffinity(tid, cores)
            if NICE:
                os.setpriority(os.PRIO_PROCESS, tid, NICE)
        except OSError:
            pass


def rss_mib(pid: int) -> tuple[float, float] | None:
    """Resident memory of ``pid`` and its child processes (a server's workers), in MiB:
    ``(now, peak)``, the peak being each process's high-water mark (``VmHWM``) summed;
    ``None`` when ``/proc`` cannot tell (not Linux, or the process is gone)."""
    import psutil

    try:
        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)]
    except psutil.Error:
        return None
    now = peak = 0
    for member in tree:
        try:
            with open(f"/proc/{member.pid}/status", encoding="ascii") as status:
                fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
        except (OSError, ValueError):
            continue
        if "VmRSS" not in fields or "VmHWM" not in fields:
            continue  # a zombie, or not Linux
        now += int(fields["VmRSS"].split()[0])
        peak += int(fields["VmHWM"].split()[0])
    return (now / 1024, peak / 1024) if peak else None


def machine_busy(interval: float = 1.0) -> float:
    """The CPU the whole machine used over ``interval`` seconds, in percent of one core."""
    import psutil

    return float(psutil.cpu_percent(interval) * (psutil.cpu_count() or 1))


def wait_idle(limit: float, timeout: float, say: Any = print) -> float:
    """Wait up to ``timeout`` seconds until the machine uses less than ``limit`` percent of a
    core; returns the last reading."""
    deadline = time.monotonic() + timeout
    busy = machine_busy()
    while busy >= limit and time.monotonic() < deadline:
        say(f"machine busy: {busy:.0f}% of a core used by other processes; waiting (--wait-idle)")
        time.sleep(4)
        busy = machine_busy()
    return busy


def source_paths(src: str | None) -> list[str]:
    """The package source folders of the checkout ``src`` (kernel, specs, plugins)."""
    if src is None:
        return []
    root = Path(src)
    return [str(p) for p in [root / "plugin_specs" / "src", root / "kernel" / "src", *sorted(root.glob("plugins/*/src"))]]


def python_env(src: str | None = None) -> dict[str, str]:
    """The environment of child processes: ``bench`` importable, unbuffered output; with
    ``src``, the packages imported from that checkout's sources."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*source_paths(src), str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Proc:
    """A child process with its output in a log file.

    :param name: for messages.
    :param argv: the command (``sys.executable`` is prepended when it starts with ``-m``).
    :param log_dir: where ``<name>.log`` goes.
    :param cores: the cores to pin it to.
    :param src: run on the package sources of this checkout (see :func:`python_env`).
    :param cwd: its working directory.
    """

    def __init__(self, name: str, argv: list[str], log_dir: Path, cores: set[int] | None = None,
                 src: str | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.src = src
        self.cwd = cwd
        self.argv = [sys.executable, *argv] if argv[0] == "-m" else argv
        self.log_path = log_dir / f"{name}.log"
        self.cores = cores
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Proc:
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.cwd, env=python_env(self.src), start_new_session=True,
        )
        pin(self.popen.pid, self.cores)
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.popen.returncode}; its log ({self.log_path}):\n"
                f"{self.log_tail()}"
            )

    def wait_http(self, url: str, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Wait until ``GET url`` answers (any status below 500), asking every ``interval``
        seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status < 500:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {url} within {timeout:g} s:\n{self.log_tail()}")
            time.sleep(interval)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
        if self.popen is None:
            return
        try:
            if self.popen.poll() is None:
                _signal_group(self.popen.pid, signal.SIGTERM)
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    _signal_group(self.popen.pid, signal.SIGKILL)
                    self.popen.wait(grace)
            else:  # the leader is gone; its group may not be
                _signal_group(self.popen.pid, signal.SIGKILL)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessSet:
    """Processes stopped together (last started, first stopped) when the block exits."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc.start()

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        while self.procs:
            self.procs.pop().stop()

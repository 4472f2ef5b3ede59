"""``robutler-kernel serve`` as a subprocess, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path


class ServeProcess:
    """Starts ``robutler-kernel serve --config CONFIG --port 0`` and waits until it listens.

    ``with ServeProcess(config) as server: server.url`` -> ``http://127.0.0.1:<port>``.
    Its output is read on a thread (``.output``), so the pipe never fills. Stopping sends
    SIGINT (a graceful shutdown) and kills it after ``stop_timeout`` seconds.

    :param config: the YAML config file (its ``server.port`` is overridden by ``--port 0``).
    :param plugins: if given, only these entry-point plugins load (``ROBUTLER_LOAD_PLUGINS``).
    :param env: extra environment variables.
    :param cwd: working directory (tools given as ``module:function`` import from here).
    :param cores: CPU cores to pin the server to (benchmarks).
    :param timeout: seconds to wait for the server to listen.
    """

    def __init__(
        self,
        config: str | os.PathLike[str],
        *,
        plugins: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        cores: set[int] | None = None,
        args: Iterable[str] = (),
        timeout: float = 30,
        stop_timeout: float = 15,
    ) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if plugins is not None:
            environment["ROBUTLER_LOAD_PLUGINS"] = ",".join(plugins)
        self.stop_timeout = stop_timeout
        self.output: list[str] = []
        self.url = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "robutler_kernel.cli", "serve", "--config", str(Path(config)), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
            cwd=cwd,
            start_new_session=True,
        )
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self.process.pid, cores)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="serve-output", daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("robutler-kernel serve did not start:\n" + "".join(self.output))
            if line.startswith("Robutler serving"):
                self.url = line.rsplit(" at ", 1)[1].strip()
            if self.url and line.lstrip().startswith("curl "):  # the banner's last line
                return

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def stop(self) -> int | None:
        """Stop gracefully (SIGINT), kill if it hangs; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

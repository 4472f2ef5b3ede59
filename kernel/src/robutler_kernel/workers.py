"""``robutler-kernel serve --workers N``: N worker processes accepting on one socket.

The ``serve`` process becomes a supervisor that serves no request itself:

- It binds and listens once, so a port in use is one error before anything starts and
  ``--port 0`` gives every worker the same port. Each worker is a new interpreter
  (``python -m robutler_kernel.workers``) that inherits the listening socket, builds its own
  :class:`~robutler_kernel.kernel.Kernel` from the same config (``robutler_startup`` and
  every skill's ``start()`` run in each: N connection pools) and serves it with
  :func:`.serve.serve`; the OS hands each new connection to one of them. A new interpreter
  rather than ``fork()``: prometheus_client picks its multiprocess mode when it is imported,
  and forking a process that runs the metrics thread could copy a lock another thread holds.
- It prints the banner once every worker serves. A worker that exits before it serves
  stops the server (exit 1): a start-up that fails in one worker fails in all. A worker that
  dies later is replaced at once; a replacement that fails to start is retried after 1 s,
  doubling up to 30 s, while the other workers go on serving.
- SIGINT or SIGTERM: SIGTERM to every worker, each of which shuts down gracefully
  (Hypercorn's ``graceful_timeout``, then the kernel's shutdown); any still running
  :data:`STOP_GRACE` seconds later, or at a second signal, is killed.
- Metrics: every worker counts in its own files under ``PROMETHEUS_MULTIPROC_DIR``, a
  fresh temporary folder; the supervisor serves their aggregate on the metrics port
  (``MultiProcessCollector``), marks each worker that exits dead (its live gauges leave
  the sums; its counts stay) and removes the folder on exit.
- Each worker holds one end of a socket pair with the supervisor: it writes ``ready`` once
  it serves, the supervisor reads end-of-file when it exits, and a worker whose supervisor
  is gone (``kill -9``) reads end-of-file and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .serve import _listen_error, hypercorn_config, start_metrics_server

log = logging.getLogger("robutler.workers")

#: Seconds the workers get to finish their requests and shut down after SIGINT/SIGTERM
#: (Hypercorn's graceful_timeout is 10) before they are killed.
STOP_GRACE = 15.0
#: The first and the longest wait before retrying a replacement worker that failed to start.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0


class WorkersFailed(Exception):
    """The workers could not be started; the message says which and how it exited."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, for the workers to share.

    :raises ListenError: the address cannot be bound.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise _listen_error(host, port, exc) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        # Each worker listens again with the configured backlog when it starts serving.
        sock.listen(hypercorn_config(host, port).backlog)
    except OSError as exc:
        sock.close()
        raise _listen_error(host, port, exc) from None
    return sock


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    channel: socket.socket | None
    ready: bool = False


@dataclass
class _Slot:
    """One of the N worker places: who holds it, and when to try again after failures."""

    index: int
    worker: _Worker | None = None
    failures: int = 0
    start_at: float = 0.0


def worker_argv(index: int, listen_fd: int, control_fd: int, host: str, config: str | None, access_log: bool) -> list[str]:
    """The command line of worker ``index``."""
    argv = [sys.executable, "-m", "robutler_kernel.workers", "--index", str(index), "--fd", str(listen_fd),
            "--control-fd", str(control_fd), "--host", host]
    if config is not None:
        argv += ["--config", os.path.abspath(config)]
    if access_log:
        argv.append("--access-log")
    return argv


def supervise(
    config: str | None,
    *,
    host: str,
    port: int,
    workers: int,
    metrics_port: int | None,
    access_log: bool = False,
    ready: Callable[[str, int | None], None] | None = None,
) -> int:
    """Serve with ``workers`` worker processes until SIGINT/SIGTERM; returns the exit code.

    :param config: the config file each worker loads (``None``: the same default as ``serve``).
    :param metrics_port: where to serve the workers' aggregated metrics (``None``: nowhere,
        and the workers keep theirs in memory).
    :param ready: called with the URL and the metrics port once every worker serves.
    :raises ListenError: the address cannot be bound.
    :raises WorkersFailed: a worker exited before it served.
    """
    if os.name != "posix":
        raise WorkersFailed("--workers above 1 needs a POSIX system (Linux, macOS)")
    listener = listen_socket(host, port)
    bound = listener.getsockname()[1]
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    metrics_dir: str | None = None
    try:
        if metrics_port is not None:
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            metrics_dir = tempfile.mkdtemp(prefix="robutler-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
            metrics_port = start_metrics_server(metrics_port, host, registry)
        supervisor = _Supervisor(listener, host, config, access_log, env, metrics_dir, workers)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
        return supervisor.run(lambda: ready(url, metrics_port) if ready is not None else None)
    finally:
        listener.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class _Supervisor:
    def __init__(self, listener: socket.socket, host: str, config: str | None, access_log: bool,
                 env: dict[str, str], metrics_dir: str | None, count: int) -> None:
        self.listener = listener
        self.host = host
        self.config = config
        self.access_log = access_log
        self.env = env
        self.metrics_dir = metrics_dir
        self.slots = [_Slot(i) for i in range(count)]
        self.selector = selectors.DefaultSelector()
        self.signals = 0
        self.stop_deadline: float | None = None
        self.failure: str | None = None
        self.serving = False

    def run(self, on_ready: Callable[[], None]) -> int:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        previous_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)

        def on_signal(signum: int, frame: Any) -> None:
            self.signals += 1

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in self.slots:
                self._start(slot)
            while True:
                if self.signals and self.stop_deadline is None:
                    self._stop(kill=False)
                if self.signals > 1 or (self.stop_deadline is not None and time.monotonic() > self.stop_deadline):
                    self._stop(kill=True)
                if self.stop_deadline is not None and not self._alive():
                    break
                for key, _ in self.selector.select(self._timeout()):
                    if key.data is None:
                        _drain(key.fileobj)  # type: ignore[arg-type]
                    else:
                        self._read(key.data)
                self._reap()
                if self.stop_deadline is None:
                    if not self.serving and all(s.worker is not None and s.worker.ready for s in self.slots):
                        self.serving = True
                        pids = ", ".join(str(s.worker.proc.pid) for s in self.slots if s.worker)
                        log.info("%d workers serving (pids %s)", len(self.slots), pids)
                        on_ready()
                    now = time.monotonic()
                    for slot in self.slots:
                        if slot.worker is None and now >= slot.start_at:
                            self._start(slot)
        finally:
            self._stop(kill=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            self.selector.close()
            wake_r.close()
            wake_w.close()
        if self.failure is not None:
            raise WorkersFailed(self.failure)
        return 0

    def _start(self, slot: _Slot) -> None:
        ours, theirs = socket.socketpair()
        argv = worker_argv(slot.index, self.listener.fileno(), theirs.fileno(), self.host, self.config, self.access_log)
        try:
            proc = subprocess.Popen(argv, pass_fds=(self.listener.fileno(), theirs.fileno()), env=self.env,
                                    stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        ours.setblocking(False)
        slot.worker = _Worker(slot.index, proc, ours)
        self.selector.register(ours, selectors.EVENT_READ, slot.worker)

    def _read(self, worker: _Worker) -> None:
        assert worker.channel is not None
        try:
            data = worker.channel.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            worker.ready = worker.ready or b"ready" in data
            return
        # End of file: the worker is exiting; _reap collects it.
        self.selector.unregister(worker.channel)
        worker.channel.close()
        worker.channel = None

    def _reap(self) -> None:
        for slot in self.slots:
            worker = slot.worker
            if worker is None or worker.proc.poll() is None:
                continue
            code = worker.proc.returncode
            if worker.channel is not None:
                self.selector.unregister(worker.channel)
                worker.channel.close()
            if self.metrics_dir is not None:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(worker.proc.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            slot.worker = None
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            if self.stop_deadline is not None:
                log.info("worker %d (pid %d) %s", slot.index, worker.proc.pid, "stopped" if code == 0 else how)
                continue
            if worker.ready:
                log.warning("worker %d (pid %d) %s; starting another", slot.index, worker.proc.pid, how)
                slot.failures, slot.start_at = 0, 0.0
            elif not self.serving:
                self.failure = (f"worker {slot.index} (pid {worker.proc.pid}) {how} before it served "
                                "(its output is above); stopping the other workers")
                self._stop(kill=False)
            else:
                delay = min(RESTART_DELAY * 2**slot.failures, RESTART_DELAY_MAX)
                slot.failures += 1
                slot.start_at = time.monotonic() + delay
                log.error("worker %d (pid %d) %s before it served; trying again in %g s",
                          slot.index, worker.proc.pid, how, delay)

    def _alive(self) -> list[_Worker]:
        return [s.worker for s in self.slots if s.worker is not None]

    def _stop(self, *, kill: bool) -> None:
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + STOP_GRACE
        for worker in self._alive():
            if worker.proc.poll() is None:
                try:
                    worker.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                except ProcessLookupError:
                    pass
        if kill:
            for worker in self._alive():
                worker.proc.wait()
            self._reap()

    def _timeout(self) -> float:
        now = time.monotonic()
        waits = [0.5]  # the exit of a worker is noticed at least this often
        if self.stop_deadline is not None:
            waits.append(self.stop_deadline - now)
        waits += [s.start_at - now for s in self.slots if s.worker is None and self.stop_deadline is None]
        return max(0.0, min(waits))


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(512):
            pass
    except OSError:
        pass


# -- the worker ------------------------------------------------------------------------------


def worker_main(argv: Sequence[str] | None = None) -> int:
    """A worker: build the kernel of ``--config`` and serve it on the inherited socket."""
    parser = argparse.ArgumentParser(prog="python -m robutler_kernel.workers",
                                     description="One worker of robutler-kernel serve --workers (started by it).")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket")
    parser.add_argument("--control-fd", type=int, required=True, help="the socket pair with the supervisor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)

    from robutler_specs import ConfigError, PluginError

    from . import eventloop
    from .cli import _fail, _kernel, configure_logging
    from .serve import serve
    from .state_store import MemoryStateStore

    # Nothing this worker starts (a plugin's subprocess) keeps the supervisor's sockets.
    os.set_inheritable(args.fd, False)
    os.set_inheritable(args.control_fd, False)
    control = socket.socket(fileno=args.control_fd)
    try:
        kernel = _kernel(args.config)
    except (ConfigError, PluginError) as exc:
        return _fail(f"worker {args.index}: {exc}")
    configure_logging(kernel.config.server, worker=args.index)

    def ready(url: str) -> None:
        control.sendall(b"ready\n")
        if args.index == 0 and isinstance(kernel.state_store, MemoryStateStore):
            log.warning(
                "each worker keeps its own in-process state store: stored responses "
                "(previous_response_id) and mixed tool turns are found only by the worker that "
                "stored them; share one (plugins.memory.redis_url) so that every worker sees them"
            )

    async def run() -> None:
        loop = asyncio.get_running_loop()

        def supervisor_gone() -> None:
            try:
                data = control.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(control.fileno())
                log.warning("the supervisor is gone; stopping")
                signal.raise_signal(signal.SIGTERM)

        control.setblocking(False)
        loop.add_reader(control.fileno(), supervisor_gone)
        await serve(kernel, args.host, 0, access_log=args.access_log, ready=ready, fd=args.fd)

    try:
        eventloop.run(run())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())

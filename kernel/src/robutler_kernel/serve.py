"""Serving a kernel on Hypercorn, with Prometheus metrics on their own port."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import socket
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from . import reclaim
from .kernel import Kernel

log = logging.getLogger("robutler.serve")


class ListenError(Exception):
    """The server cannot listen where it was told to (port in use, unknown host, ...); the
    message says what to change."""


def _listen_error(host: str, port: int, exc: OSError) -> ListenError:
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return ListenError(f"cannot listen on {where}: unknown host {host!r}; use an address such as 127.0.0.1 or 0.0.0.0 (--host or server.host)")
    if exc.errno == errno.EADDRINUSE:
        return ListenError(f"cannot listen on {where}: the port is already in use (another server?); choose another with --port or server.port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ListenError(f"cannot listen on {where}: {host} is not an address of this machine; use 127.0.0.1 or 0.0.0.0 (--host or server.host)")
    if exc.errno == errno.EACCES:
        return ListenError(f"cannot listen on {where}: permission denied (ports below 1024 need privileges); choose another with --port")
    return ListenError(f"cannot listen on {where}: {exc.strerror or exc}")


#: ``server.backlog``'s default; Hypercorn's own (100) loses connections of a burst.
DEFAULT_BACKLOG = 4096


def hypercorn_config(host: str, port: int, *, access_log: bool = False, backlog: int = DEFAULT_BACKLOG) -> HypercornConfig:
    """Hypercorn settings for the kernel: one bind, the listen ``backlog``
    (``server.backlog``), no access log by default (it costs throughput; the metrics count
    every request), a graceful shutdown window."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = "-" if access_log else None
    config.backlog = backlog
    # Hypercorn's errors go through the process's logging (configured by the CLI), once.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75
    config.graceful_timeout = 10
    return config


def somaxconn() -> int | None:
    """The OS's cap on a listen backlog (``net.core.somaxconn`` on Linux), if known."""
    try:
        with open("/proc/sys/net/core/somaxconn", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def raise_open_files_limit(wanted: int, needed: int = 0) -> int:
    """Raise this process's soft limit of open files towards ``wanted`` (up to the hard
    limit): each client connection and each upstream connection is a file. Returns the
    soft limit now in force; one below ``needed`` is logged, since connections past it
    fail (``Too many open files``)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # pragma: no cover - depends on the OS
            log.warning("cannot raise the open files limit to %s: %s", target, exc)
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "the open files limit is %s (hard limit %s), below the %s connections "
            "server.max_concurrent_requests allows; raise it (ulimit -n, LimitNOFILE=, the "
            "container's nofile ulimit) or lower the setting", soft, hard, needed,
        )
    return int(soft)


def start_metrics_server(port: int | None, host: str, registry: Any = None) -> int | None:
    """Serve ``/metrics`` on ``port`` in a background thread; returns the bound port.

    A port that is taken is logged and skipped, so a second replica on one machine
    still serves agents.

    :param registry: the ``CollectorRegistry`` to serve (default: the process's own;
        ``serve --workers`` gives one that reads every worker's files)."""
    if port is None:
        return None
    from prometheus_client import start_http_server

    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    try:
        if registry is None:
            start_http_server(port, addr=host)
        else:
            start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("metrics port %s unavailable (%s); metrics are not served", port, exc)
        return None
    return port


#: The cycle collector's youngest threshold while serving (Python's default is 700 net
#: allocations). At 700, a server with 64 requests in flight collects every few requests and
#: walks those requests' live objects each time, promoting them towards the old generations,
#: whose full collections then walk every module and agent object; the collections cost the
#: payments configuration about a quarter of its CPU per request (docs/benchmarks.md). At
#: 10,000 a young collection is rarer, walks what is young, and costs about 1 MiB more.
GC_YOUNG_THRESHOLD = 10_000


def tune_collector(young: int = GC_YOUNG_THRESHOLD) -> None:
    """Raise the collector's youngest threshold to ``young`` (never lower it)."""
    current, middle, old = gc.get_threshold()
    if current < young:
        gc.set_threshold(young, middle, old)


async def serve(
    kernel: Kernel, host: str, port: int, *, access_log: bool = False, ready: Any = None, fd: int | None = None
) -> None:
    """Serve ``kernel`` until SIGINT/SIGTERM. ``ready(url)`` is called once listening.

    :param fd: a socket already bound and listening to accept on instead of binding
        ``host:port`` (``serve --workers``: every worker accepts on the supervisor's socket).
    :raises ListenError: the address cannot be bound (before the kernel starts).
    """
    server = kernel.config.server
    config = hypercorn_config(host, port, access_log=access_log, backlog=server.backlog)
    cap = somaxconn()
    if cap is not None and cap < server.backlog:
        log.warning("server.backlog is %s but the OS caps it at %s (net.core.somaxconn); raise "
                    "that sysctl for the full backlog", server.backlog, cap)
    # A client connection and an upstream one per request in flight, and some to spare.
    limit = server.max_concurrent_requests or 0
    raise_open_files_limit(2 * (limit or 32768) + 1024, limit + 256)
    tune_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    if fd is not None:
        with socket.socket(fileno=os.dup(fd)) as sock:
            bound = sock.getsockname()[1]
        config.bind = [f"fd://{fd}"]
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            bound = sock.getsockname()[1]
        except OSError as exc:
            raise _listen_error(host, port, exc) from None
        finally:
            sock.close()
        config.bind = [f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"]
    task = asyncio.create_task(hypercorn_serve(kernel.asgi_app(), config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    while not kernel.started and not task.done():
        await asyncio.sleep(0.01)
    if ready is not None and not task.done():
        ready(f"http://{host if ':' not in host else f'[{host}]'}:{bound}")
    # Memory a burst left behind goes back to the OS once the server is quiet (reclaim.py).
    reclaimer = asyncio.create_task(reclaim.run()) if reclaim.enabled() else None
    try:
        await task
    finally:
        if reclaimer is not None:
            reclaimer.cancel()

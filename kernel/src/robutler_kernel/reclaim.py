"""Giving memory back to the OS once a burst of requests is over.

Why: each request leaves reference cycles behind (Hypercorn's per-connection server and
protocol objects refer to each other, a cancelled stream's exception holds its frames,
tasks and their guards point at one another). Python frees cycles only in its cyclic
collector, which runs when new objects are allocated, so a server that goes idle after
10,000 streams keeps them all: about 200,000 dead objects and 100 MiB for 2,000 streams
(docs/soak.md). Once collected, the memory is free inside the process; glibc returns what
it can to the OS only when asked (``malloc_trim``).

What: :func:`run` watches the process. When it has been quiet (under
:data:`QUIET_CPU` of a core over :data:`INTERVAL` seconds) and its RSS has grown by
:data:`GROWTH` since the last reclaim, it runs ``gc.collect()`` and then glibc's
``malloc_trim(0)``. A busy server is never interrupted; a quiet one pays one collection
(tens of milliseconds) per burst, and two more
35 s apart while it stays quiet, for what idle keep-alive connections held. ``ROBUTLER_RECLAIM_MEMORY=0`` turns it off.

How much comes back depends on the allocator: with Python's own small-object allocator
(pymalloc, the default) arenas still holding one live object stay mapped, so part of the
burst's peak stays (the figures are in docs/soak.md); with ``PYTHONMALLOC=malloc`` every
object comes from glibc and the RSS returns to within a few MiB of where it started.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger("robutler.kernel.memory")

#: Seconds between looks.
INTERVAL = 5.0
#: The CPU share (of one core) under which the process counts as quiet.
QUIET_CPU = 0.02
#: RSS growth (bytes) since the last reclaim that makes one worth it.
GROWTH = 32 * 1024 * 1024
#: Reclaims again this many times, :data:`FOLLOWUP_SPACING` seconds apart, while still
#: quiet: idle keep-alive connections to providers close later (kept 30 s),
#: and what they held is freed then.
FOLLOWUPS = 2
FOLLOWUP_SPACING = 35.0


def enabled(env: dict[str, str] | None = None) -> bool:
    """Whether the reclaimer runs (``ROBUTLER_RECLAIM_MEMORY``, on unless ``0``/``false``/``no``)."""
    value = (env if env is not None else os.environ).get("ROBUTLER_RECLAIM_MEMORY", "1")
    return value.strip().lower() not in ("0", "false", "no", "off")


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or ``None`` where there is none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def rss() -> int:
    """This process's resident set size in bytes (0 when unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # pragma: no cover - no way to read it here
            return 0


def reclaim(trim: Callable[[], object] | None = None) -> tuple[int, int, int]:
    """Collect cycles and trim the heap now; returns (RSS before, objects freed, RSS after)."""
    before = rss()
    freed = gc.collect()
    if trim is not None:
        trim()
    return before, freed, rss()


async def run(interval: float = INTERVAL, quiet_cpu: float = QUIET_CPU, growth: int = GROWTH,
              followups: int = FOLLOWUPS, spacing: float = FOLLOWUP_SPACING) -> None:
    """Watch the process until cancelled, reclaiming memory after each burst (see the module)."""
    trim = _malloc_trim()
    baseline = rss()
    cpu = time.process_time()
    pending, last = 0, time.monotonic()
    while True:
        await asyncio.sleep(interval)
        used, cpu = time.process_time() - cpu, time.process_time()
        if used > quiet_cpu * interval:
            continue
        now = rss()
        if now - baseline >= growth:
            pending = followups
        elif not (pending and time.monotonic() - last >= spacing):
            continue
        else:
            pending -= 1
        before, freed, after = reclaim(trim)
        log.info("memory reclaimed after a burst: RSS %.0f -> %.0f MiB (%d objects in reference cycles freed)",
                 before / 2**20, after / 2**20, freed)
        baseline, last = after, time.monotonic()
        cpu = time.process_time()


__all__ = ["FOLLOWUPS", "FOLLOWUP_SPACING", "GROWTH", "INTERVAL", "QUIET_CPU", "enabled", "reclaim", "rss", "run"]

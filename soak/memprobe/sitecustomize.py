"""Memory probes for a server under the soak suite, switched on by the environment.

The soak suite puts this folder on ``PYTHONPATH`` of the servers it starts, so Python
imports it at start-up; it does nothing unless ``ROBUTLER_SOAK_MEMPROBE`` is set:

- ``SIGUSR1``: print ``memprobe: rss ...`` (the RSS, the gc counts, the live asyncio tasks,
  the growth of live objects by type since the previous ``SIGUSR1``),
  run ``gc.collect()``, print the RSS again, call glibc's ``malloc_trim(0)`` and print
  the RSS once more: what the collector and the allocator can give back;
- with ``ROBUTLER_SOAK_MEMPROBE=tracemalloc``, ``tracemalloc`` runs from the start and
  ``SIGUSR2`` prints the 25 biggest growths since the previous ``SIGUSR2`` (the first one
  takes the baseline), by line.
"""

from __future__ import annotations

import os

if os.environ.get("ROBUTLER_SOAK_MEMPROBE"):
    import ctypes
    import gc
    import signal
    import sys

    def _rss() -> str:
        with open("/proc/self/statm") as f:
            return f"{int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20:.1f} MiB"

    _counts: list[dict[str, int]] = []

    def _types() -> None:
        from collections import Counter

        counts = Counter(type(o).__qualname__ for o in gc.get_objects())
        if _counts:
            growth = sorted(((n - _counts[0].get(k, 0), k) for k, n in counts.items()), reverse=True)[:15]
            print("memprobe: object growth by type: " + ", ".join(f"{k} +{d}" for d, k in growth if d > 0),
                  file=sys.stderr, flush=True)
        _counts[:] = [dict(counts)]

    def _describe(obj: object) -> str:
        name = type(obj).__qualname__
        if isinstance(obj, dict):
            return f"dict keys {list(obj)[:6]}"
        if name == "cell":
            return "cell"
        if name == "function":
            return f"function {getattr(obj, '__qualname__', '?')}"
        if name == "method":
            return f"method {getattr(obj, '__qualname__', '?')}"
        return f"{type(obj).__module__}.{name}"

    def _why(kind: str, depth: int = 7) -> None:
        """Print who keeps the oldest live object of type ``kind``: a chain of referrers."""
        import types

        found = [o for o in gc.get_objects() if type(o).__qualname__ == kind]
        if not found:
            return
        obj: object = found[len(found) // 2]
        chain = [_describe(obj)]
        skip = {id(found), id(chain)}
        for _ in range(depth):
            referrers = gc.get_referrers(obj)
            skip.add(id(referrers))
            refs = [r for r in referrers if id(r) not in skip and not isinstance(r, types.FrameType)]
            skip.add(id(refs))
            if not refs:
                break
            # Prefer an object over a container: the owner says more than the list it is in.
            refs.sort(key=lambda r: isinstance(r, (list, tuple, set, dict)))
            obj = refs[0]
            skip.add(id(obj))
            chain.append(_describe(obj))
            del referrers, refs
        del found
        print(f"memprobe: who keeps a {kind}: " + " <- ".join(chain), file=sys.stderr, flush=True)

    def _report(signum: int, frame: object) -> None:
        import asyncio

        _types()
        for kind in filter(None, os.environ.get("ROBUTLER_SOAK_MEMPROBE_WHY", "").split(",")):
            _why(kind)

        try:
            tasks = len(asyncio.all_tasks(asyncio.get_running_loop()))
        except RuntimeError:
            tasks = -1
        print(f"memprobe: rss {_rss()} gc {gc.get_count()} objects {len(gc.get_objects())} tasks {tasks}",
              file=sys.stderr, flush=True)
        freed = gc.collect()
        print(f"memprobe: after gc.collect ({freed} unreachable) rss {_rss()} objects {len(gc.get_objects())}",
              file=sys.stderr, flush=True)
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            print(f"memprobe: after malloc_trim rss {_rss()}", file=sys.stderr, flush=True)
        except OSError:
            pass

    signal.signal(signal.SIGUSR1, _report)

    if os.environ["ROBUTLER_SOAK_MEMPROBE"] == "tracemalloc":
        import tracemalloc

        tracemalloc.start(8)
        _previous: list[tracemalloc.Snapshot] = []

        def _diff(signum: int, frame: object) -> None:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)])
            if _previous:
                stats = snapshot.compare_to(_previous[0], "lineno")
                print("memprobe: tracemalloc growth since the baseline:", file=sys.stderr)
                for stat in stats[:25]:
                    print(f"memprobe:   {stat}", file=sys.stderr)
                sys.stderr.flush()
            else:
                print(f"memprobe: tracemalloc baseline taken, traced {tracemalloc.get_traced_memory()}",
                      file=sys.stderr, flush=True)
            _previous[:] = [snapshot]

        signal.signal(signal.SIGUSR2, _diff)

"""Where a server's time goes: py-spy during a run, and a summary of its samples.

``python -m bench --profile DIR`` records every compared target's first run of each cell
with py-spy (``pip install py-spy``) into ``DIR/<target>-<scenario>-c<concurrency>.txt``
(collapsed stacks, one ``frame;frame;... count`` line each; any flame-graph tool reads them).
``python -m bench.profile FILE [N]`` prints the N hottest functions of the event-loop thread,
self and inclusive, skipping the samples where the loop is idle.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_PACKAGE = re.compile(r"\(([^/ ():]+)[/.]")


def start(pid: int, out: Path, seconds: float, rate: int = 200) -> subprocess.Popen[bytes] | None:
    """Start ``py-spy record`` on ``pid`` for ``seconds``; ``None`` when py-spy is missing."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return None
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
            "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def summarize(lines: list[str], top: int = 25) -> str:
    """The hottest functions of the main (event-loop) thread in collapsed-stack ``lines``."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    busy = idle = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        if not any("Runner.run" in f or "run_until_complete" in f for f in frames):
            continue  # other threads (metrics server, thread pools)
        if "selectors.py" in frames[-1]:
            idle += n
            continue
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
        for package in {m.group(1) for f in frames if (m := _PACKAGE.search(f))}:
            packages[package] += n
    if not busy:
        return "no busy samples of the event-loop thread"

    def block(title: str, counter: Counter[str], n: int) -> list[str]:
        return [title, *(f"{c:7d} {100 * c / busy:5.1f}%  {name}" for name, c in counter.most_common(n))]

    out = [f"event-loop thread: {busy} busy samples, {idle} idle"]
    out += block("-- inclusive, by package", packages, 15)
    out += block("-- self", own, top)
    out += block("-- inclusive", incl, top * 2)
    return "\n".join(out)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.profile FILE [TOP]")
    print(summarize(Path(sys.argv[1]).read_text().splitlines(), int(sys.argv[2]) if len(sys.argv) > 2 else 25))


if __name__ == "__main__":
    main()

"""What the ``guardrails`` skill adds to a stream: ``python -m bench guardrails``.

Two parts:

1. **The redactor alone**: microseconds per chunk of :class:`StreamRedactor.feed` on an
   answer streamed a word at a time (prose, and prose dense with PII), the bytes it holds
   back, and the whole-text redaction per KB (what ``after_llm_call`` does once per answer).
2. **Through the kernel**: the same agent on the offline ``scripted`` model streaming a
   60-word answer at 5 ms a chunk, without and with the guardrails skill, served on a loopback socket;
   time to the first chunk with text and time per chunk, as an HTTP client reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from robutler_plugin_guardrails import Redactor

PROSE = ("The order you asked about left our warehouse on Monday and should arrive within "
         "three working days; the tracking page shows each step. ") * 20
DENSE = ("Contact john.doe@example.com or +1 415 555 2671, card 4111 1111 1111 1111, IBAN "
         "DE89 3704 0044 0532 0130 00, key sk-proj-4fQ9xT2mLw8ZrB6yKc1VnH3s from 10.0.0.12. ") * 10


def words(text: str) -> list[str]:
    """``text`` cut as a model streams it: one chunk per word, the space first."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]]


#: The streamed answer through the kernel: words, and seconds between chunks.
WORDS = 60
CHUNK_DELAY = 0.005


def micro(seconds: float) -> list[list[Any]]:
    """Rows: case, chunks, us/chunk, max held bytes, us per KB whole."""
    redactor = Redactor()
    rows = []
    for name, text in (("prose", PROSE), ("dense PII", DENSE)):
        chunks = words(text)
        held = 0
        timings = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or not timings:
            stream = redactor.stream()
            started = time.perf_counter()
            for chunk in chunks:
                stream.feed(chunk)
                held = max(held, stream.held)
            stream.flush()
            timings.append((time.perf_counter() - started) / len(chunks))
        whole = []
        deadline = time.perf_counter() + seconds / 2
        while time.perf_counter() < deadline or not whole:
            started = time.perf_counter()
            redactor.redact(text)
            whole.append(time.perf_counter() - started)
        kb = len(text.encode()) / 1024
        rows.append([name, len(chunks), f"{statistics.median(timings) * 1e6:.1f}", held,
                     f"{statistics.median(whole) / kb * 1e6:.0f}"])
    return rows


async def _timed(client: Any, url: str) -> tuple[float, float, int]:
    """One streamed request: seconds to the first chunk with text, in all, and chunks."""
    body = {"stream": True, "messages": [{"role": "user", "content": "status?"}]}
    started = time.perf_counter()
    first = None
    count = 0
    async with client.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            count += 1
            if first is None and '"content":"' in line and '"content":""' not in line:
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    return first or total, total, count


def through_kernel(runs: int) -> list[list[Any]]:
    """Rows: target, first text chunk (ms), per chunk (ms), chunks. Served on a loopback
    socket (``LiveServer``): an in-process ASGI client gets the body only once it is whole."""
    import httpx

    import robutler_plugin_guardrails as guardrails
    import robutler_plugin_scripted as scripted
    from robutler_kernel.testing import LiveServer, make_kernel

    answer = " ".join(PROSE.split(" ")[:WORDS])
    # A model's pace (5 ms a chunk, a fast one): without it the whole answer is written
    # before the client reads its first line, and "first chunk" means "whole answer".
    script = {"chunk_delay": CHUNK_DELAY, "scripts": {"long": [{"content": answer}]}}
    rows = []
    for name, skills in (("no guardrails", {"scripted": script}),
                         ("guardrails", {"scripted": script, "guardrails": {}})):
        kernel = make_kernel({"bot": {"model": "scripted/long", "skills": skills}}, plugins=[scripted, guardrails])
        with LiveServer(kernel) as server:
            async def measure(url: str = server.url + "/bot/chat/completions") -> list[tuple[float, float, int]]:
                async with httpx.AsyncClient(timeout=30) as client:
                    return [await _timed(client, url) for _ in range(runs + 2)][2:]  # two warm-ups

            results = asyncio.run(measure())
        firsts = [r[0] for r in results]
        per_chunk = [r[1] / r[2] for r in results]
        rows.append([name, f"{statistics.median(firsts) * 1e3:.2f}", f"{statistics.median(per_chunk) * 1e3:.3f}",
                     results[-1][2]])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench guardrails", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per redactor case (default 1)")
    parser.add_argument("--runs", type=int, default=20, help="streamed requests per kernel target (default 20)")
    parser.add_argument("--quick", action="store_true", help="short runs")
    args = parser.parse_args(argv)
    from .report import format_table

    seconds, runs = (0.1, 2) if args.quick else (args.seconds, args.runs)
    print("the stream redactor alone, one chunk per word (median)\n")
    print(format_table(["text", "chunks", "us/chunk", "max held bytes", "whole text, us/KB"], micro(seconds)))
    print(f"\nthrough the kernel: scripted/long streams {WORDS} words, {CHUNK_DELAY * 1e3:g} ms a chunk, "
          "over loopback HTTP (median)\n")
    print(format_table(["agent", "first text chunk, ms", "per chunk, ms", "chunks"], through_kernel(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

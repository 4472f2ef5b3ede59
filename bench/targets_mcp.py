"""What one MCP tool call adds: ``python -m bench mcp`` (``tox -e bench -- mcp``).

Three agents on the offline ``scripted`` model, each answering a request with one tool call
then a short answer (two LLM calls), so that only the tool's path differs:

* ``plain``: the tool is a plain async Python function (``tools: [...]``);
* ``mcp-stdio``: the same tool in an MCP server (the SDK's ``MCPServer``) the kernel runs as a
  child process, over stdio;
* ``mcp-http``: the same server over streamable HTTP (stateless, JSON answers) on loopback.

Requests go to the kernel in-process (ASGI), one at a time, batch by batch alternating the
agents; each figure is the median over batches, per request: wall time (what a client
waits), and this process's CPU (the kernel's share; the MCP server's own CPU is in another
process). ``added`` is the difference with ``plain``: the cost of one MCP call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from robutler_kernel.testing.ports import wait_listening

from .procs import free_port


async def noop() -> str:
    """The plain tool (async, as the MCP path is: no thread hop in either)."""
    return "done"


def _agent(tool: str, **extra: Any) -> dict[str, Any]:
    script = [{"tool_calls": [{"name": tool, "arguments": {}}]}, {"content": "Done."}]
    skills: dict[str, Any] = {"scripted": {"scripts": {"s": {"turns": script, "repeat": True}}}}
    skills.update(extra)
    return {"model": "scripted/s", "skills": skills}


def agents(http_url: str) -> dict[str, dict[str, Any]]:
    """The three agents (see the module)."""
    stdio = {"command": sys.executable, "args": ["-m", "bench.mcp_toolserver", "stdio"]}
    return {
        "plain": {**_agent("noop"), "tools": ["bench.targets_mcp:noop"]},
        "mcp-stdio": _agent("s__noop", mcp={"servers": {"s": stdio}}),
        "mcp-http": _agent("h__noop", mcp={"servers": {"h": {"url": http_url}}}),
    }


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    """The MCP server over streamable HTTP on a free loopback port; yields its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.mcp_toolserver", "http", str(port)])
    try:
        if not wait_listening(port, proc, 30):
            raise SystemExit("error: the MCP bench server did not start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


async def measure(url: str, batches: int, size: int) -> dict[str, dict[str, float]]:
    """Per agent: median wall and CPU microseconds per request."""
    import robutler_plugin_mcp
    import robutler_plugin_scripted
    from robutler_kernel.testing import kernel_client, make_kernel

    kernel = make_kernel(agents(url), plugins=[robutler_plugin_scripted, robutler_plugin_mcp])
    body = {"messages": [{"role": "user", "content": "go"}]}
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    async with kernel_client(kernel) as client:
        for name in agents(url):  # warm up: sessions open, first listings, caches
            for _ in range(20):
                response = await client.post(f"/{name}/chat/completions", json=body)
                assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Done."
        for _ in range(batches):
            for name in agents(url):
                started, cpu_started = time.perf_counter(), time.process_time()
                for _ in range(size):
                    await client.post(f"/{name}/chat/completions", json=body)
                wall.setdefault(name, []).append((time.perf_counter() - started) / size * 1e6)
                cpu.setdefault(name, []).append((time.process_time() - cpu_started) / size * 1e6)
    return {n: {"wall_us": statistics.median(wall[n]), "cpu_us": statistics.median(cpu[n])} for n in wall}


def render(results: dict[str, dict[str, float]]) -> str:
    """A table: per request, and what the MCP call adds to the plain tool."""
    from .report import format_table

    plain = results["plain"]
    rows = [
        [
            name,
            f"{r['wall_us']:.0f}",
            f"{r['wall_us'] - plain['wall_us']:+.0f}",
            f"{r['cpu_us']:.0f}",
            f"{r['cpu_us'] - plain['cpu_us']:+.0f}",
        ]
        for name, r in results.items()
    ]
    headers = ["agent", "wall us/request", "added wall us", "kernel CPU us/request", "added CPU us"]
    return format_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench mcp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=15, help="batches per agent (default 15)")
    parser.add_argument("--size", type=int, default=40, help="requests per batch (default 40)")
    args = parser.parse_args(argv)
    with http_server() as url:
        results = asyncio.run(measure(url, args.batches, args.size))
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

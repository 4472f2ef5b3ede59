"""What the ``otel`` skill costs a request: ``python -m bench otel``.

The same agent on the offline ``scripted`` model, driven in-process (the ASGI app through
httpx, one request at a time), without the otel skill and with it: spans exported in
batches with OTLP/HTTP to a sink in another process (so its CPU is not counted here), and
with ``sample_ratio: 0`` (spans made but not recorded). Figures are this process's CPU
time per request (the exporter's thread included) and wall time per request. Two
requests: a plain answer (2 spans) and one tool call (4 spans: request, two LLM calls,
the tool).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

SINK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

TOOLS = ["bench.targets_otel:lookup"]
REQUESTS = {
    "plain answer": {"messages": [{"role": "user", "content": "hello there"}]},
    "one tool call": {"messages": [{"role": "user", "content": "call lookup city=Oslo"}]},
}


def lookup(city: str) -> str:
    """The weather of a city.

    Args:
        city: the city
    """
    return f"Sunny in {city}"


def kernel_for(otel: dict[str, Any] | None) -> Any:
    import robutler_plugin_otel
    import robutler_plugin_scripted as scripted
    from robutler_kernel import Kernel
    from robutler_kernel.config import config_from_dict

    skills: dict[str, Any] = {} if otel is None else {"otel": {}}
    config = config_from_dict({
        "server": {"metrics_port": None},
        "agents": {"bot": {"model": "scripted/echo", "tools": TOOLS, "skills": skills}},
        "plugins": {"otel": otel or {"exporter": "none"}},
    })
    return Kernel(config, plugins=[scripted, robutler_plugin_otel], discover=False)


async def measure(kernel: Any, body: dict[str, Any], requests: int) -> tuple[float, float]:
    """(CPU us, wall us) per request, medians of five batches."""
    from robutler_kernel.testing import kernel_client

    cpu, wall = [], []
    async with kernel_client(kernel) as client:
        for _ in range(200):  # warm-up
            await client.post("/bot/chat/completions", json=body)
        batch = max(1, requests // 5)
        for _ in range(5):
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(batch):
                response = await client.post("/bot/chat/completions", json=body)
                assert response.status_code == 200
            cpu.append((time.process_time() - c0) / batch * 1e6)
            wall.append((time.perf_counter() - w0) / batch * 1e6)
    return statistics.median(cpu), statistics.median(wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench otel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per case (default 3000)")
    parser.add_argument("--quick", action="store_true", help="short runs")
    args = parser.parse_args(argv)
    from .report import format_table

    requests = 100 if args.quick else args.requests
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        targets: list[tuple[str, dict[str, Any] | None]] = [
            ("no otel", None),
            ("otel, OTLP batch export", {"endpoint": endpoint, "schedule_delay": 0.5}),
            ("otel, sample_ratio 0", {"endpoint": endpoint, "sample_ratio": 0.0}),
        ]
        rows = []
        for request_name, body in REQUESTS.items():
            base = None
            for name, otel in targets:
                cpu, wall = asyncio.run(measure(kernel_for(otel), body, requests))
                base = cpu if base is None else base
                rows.append([request_name, name, f"{cpu:.0f}", f"{cpu - base:+.0f}", f"{wall:.0f}"])
    finally:
        sink.terminate()
        sink.wait()
    print(f"in-process, one request at a time, {requests} requests per case (median of 5 batches)\n")
    print(format_table(["request", "agent", "CPU us/request", "vs no otel", "wall us/request"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

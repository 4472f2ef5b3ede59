"""``python -m bench [SUITE] [options]`` (``tox -e bench -- [SUITE] [options]``).

Without a suite: the server against the bare pass-through proxy (:mod:`bench.cli`). A suite
name first runs that suite instead; each compares its targets side by side in one run.
"""

import importlib
import sys

#: Suite name -> the module whose ``main(argv)`` runs it.
SUITES = {
    "server": "bench.cli",
    "providers": "bench.targets_anthropic",  # the anthropic path beside the openai path
    "auth": "bench.targets_auth",
    "payments": "bench.targets_payments",
    "memory": "bench.memory_bench",
    "longterm": "bench.targets_longterm",
    "vector": "bench.targets_vector",
    "network": "bench.targets_network",
    "guardrails": "bench.targets_guardrails",
    "mcp": "bench.targets_mcp",
    "otel": "bench.targets_otel",
    "startup": "bench.startup",  # time to ready and to the first answer, and memory
}

args = sys.argv[1:]
suite = args.pop(0) if args and args[0] in SUITES else "server"
if args and args[0] in ("-h", "--help") and suite == "server":
    print(f"suites (first argument): {', '.join(SUITES)}; default: server\n")
sys.exit(importlib.import_module(SUITES[suite]).main(args))

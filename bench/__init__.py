"""Robutler benchmarks: the server against a bare Starlette-on-Hypercorn pass-through proxy.

Run ``python -m bench`` from the repository root (``python -m bench --help``; see
``docs/benchmarks.md``). Modules:

- :mod:`bench.targets`: what is measured (a target = name, config builder, request path/body).
- :mod:`bench.procs`: starting, pinning and stopping the processes.
- :mod:`bench.passthrough`: the baseline proxy.
- :mod:`bench.load`: the aiohttp load generator (its own process).
- :mod:`bench.runner`: the run plan: which target, scenario and concurrency, in which order.
- :mod:`bench.stats` and :mod:`bench.report`: percentiles, the table and the JSON file.
"""

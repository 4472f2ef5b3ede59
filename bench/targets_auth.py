"""What the ``auth`` skill costs: ``python -m bench.targets_auth``.

Two parts:

1. **In-process**: microseconds per ``on_connection`` of the auth skill for each kind of
   credential (anonymous, an API key among 1 to 10,000 configured keys, HS256 and RS256
   JWTs, a cached portal answer, a refused key). No HTTP: the skill alone.
2. **Under load** (unless ``--no-load``): the bench harness's ``robutler-scripted`` target
   (one agent on the offline model, no auth) beside the same agent with the auth skill and
   one API key. The load generator sends ``Authorization: Bearer bench``, so the key is
   configured as ``key_hash`` of ``bench`` (a hash skips the length rule for plaintext keys).

The targets are defined here (:data:`AUTH_TARGETS`) rather than in ``bench/targets.py`` so the
harness stays plugin-agnostic; they run through :func:`bench.runner.run` like the others.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from robutler_plugin_auth import AuthConfig, AuthSkill, hash_key
from robutler_specs import AgentSpec, RequestContext, RequestError

from .targets import AGENT, TARGETS, Target

#: The key the load generator sends (``bench/load.py``).
LOAD_KEY = "bench"


def auth_agent(upstream: str) -> dict[str, Any]:
    """The ``robutler-scripted`` agent plus the auth skill with one key (``Bearer bench``)."""
    auth = {"api_keys": [{"key_hash": hash_key(LOAD_KEY), "user_id": "bench"}]}
    return {"agents": {AGENT: {"model": "scripted/echo", "skills": {"auth": auth}}}}


AUTH_TARGETS: dict[str, Target] = {
    "auth-key": Target(
        "auth-key",
        "robutler",
        "robutler-scripted plus the auth skill, one API key (Authorization: Bearer bench)",
        config=auth_agent,
        baseline="robutler-scripted",
        needs=("robutler_plugin_scripted", "robutler_plugin_auth"),
        uses_upstream=False,
    ),
}


# -- in-process ------------------------------------------------------------------------------


def _skill(config: dict[str, Any], owner: str | None = None) -> tuple[AuthSkill, AgentSpec]:
    spec = AgentSpec(name="bench", owner=owner, skills={"auth": config})
    return AuthSkill(msgspec.convert(config, AuthConfig), spec), spec


async def _time(fn: Callable[[], Awaitable[Any]], seconds: float) -> tuple[float, int]:
    """Median microseconds per call over batches filling ``seconds``; and the call count."""
    for _ in range(50):  # warm-up
        await fn()
    batches: list[float] = []
    calls, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(batches) < 5:
        started = time.perf_counter()
        for _ in range(100):
            await fn()
        batches.append((time.perf_counter() - started) / 100 * 1e6)
        calls += 100
    return statistics.median(batches), calls


async def _portal_server() -> tuple[Any, str]:
    from aiohttp import web

    async def validate(request: web.Request) -> web.Response:
        return web.json_response({"user_id": "p", "scopes": ["all"]})

    app = web.Application()
    app.router.add_get("/api/auth/validate", validate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def micro(seconds: float, key_counts: list[int]) -> list[list[Any]]:
    """Rows: case, configured keys, median microseconds per ``on_connection``, calls timed."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    secret = secrets.token_urlsafe(48)
    exp = int(time.time()) + 86400
    hs = jwt.encode({"sub": "u", "exp": exp, "scope": "admin"}, secret, algorithm="HS256")
    rs = jwt.encode({"sub": "u", "exp": exp, "scope": "admin"}, private, algorithm="RS256")
    runner, portal_url = await _portal_server()
    cases: list[tuple[str, int, dict[str, Any], str | None, bool]] = [
        ("anonymous (allowed)", 0, {"allow_anonymous": True}, None, True),
    ]
    for count in key_counts:
        keys = [secrets.token_urlsafe(32) for _ in range(count)]
        config = {"api_keys": [{"key": k, "user_id": f"u{i}"} for i, k in enumerate(keys)]}
        cases.append(("api key", count, config, keys[-1], True))
    cases += [
        ("api key, refused (401)", 1, {"api_keys": [{"key": secrets.token_urlsafe(32), "user_id": "u"}]},
         secrets.token_urlsafe(32), False),
        ("jwt HS256", 0, {"jwt": {"secret": secret}}, hs, True),
        ("jwt RS256 (2048-bit)", 0, {"jwt": {"public_key": public_pem}}, rs, True),
        ("portal, cached answer", 0, {"portal_url": portal_url}, secrets.token_urlsafe(32), True),
    ]
    rows: list[list[Any]] = []
    try:
        for name, count, config, credential, ok in cases:
            skill, spec = _skill(config)
            headers = {"authorization": f"Bearer {credential}"} if credential else {}

            async def once(skill: AuthSkill = skill, spec: AgentSpec = spec, headers: dict[str, str] = headers,
                           ok: bool = ok) -> None:
                ctx = RequestContext(spec, [], headers=headers)
                try:
                    await skill.on_connection(ctx)
                except RequestError:
                    if ok:
                        raise
                else:
                    assert ok, "a refused credential got through"

            median, calls = await _time(once, seconds)
            rows.append([name, count, median, calls])
            await skill.stop()
    finally:
        await runner.cleanup()
    return rows


# -- under load --------------------------------------------------------------------------------


def load(args: argparse.Namespace) -> str:
    """Run the harness on ``robutler-scripted`` and ``auth-key``; the table and comparison."""
    from . import report
    from .procs import cpu_plan
    from .runner import Settings, run

    targets = [AUTH_TARGETS["auth-key"], TARGETS["robutler-scripted"]]
    missing = [m for t in targets for m in t.missing()]
    if missing:
        raise SystemExit(f"error: install {', '.join(missing)} (pip install -e plugins/...)")
    settings = Settings(targets=targets, scenarios=args.scenarios, concurrency=args.concurrency,
                        duration=args.duration, warmup=args.warmup, rounds=args.rounds, plan=cpu_plan(True))
    if args.quick:
        settings.duration, settings.warmup, settings.rounds, settings.prime = 0.5, 0.2, 1, 0.3
    rows = run(settings, lambda line: print(line, file=sys.stderr, flush=True))
    known = {**TARGETS, **AUTH_TARGETS}
    lines = []
    for c in report.comparisons(rows, known):
        line = f"{c['scenario']:<6} c={c['concurrency']:<3} auth-key vs robutler-scripted: "
        line += f"throughput {100 * c['throughput_ratio']:.0f}%" if c["throughput_ratio"] is not None else "no throughput"
        if c["added_p50_ms"] is not None:
            line += f", added p50 {c['added_p50_ms']:+.3f} ms"
        lines.append(line)
    table = [[r["scenario"], r["concurrency"], r["target"], r["rps"], r["p50_ms"], r["p99_ms"], r["errors"]] for r in rows]
    headers = ["scenario", "conc", "target", "req/s", "p50 ms", "p99 ms", "errors"]
    return report.format_table(headers, table) + "\n\n" + "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.targets_auth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per in-process case (default 1)")
    parser.add_argument("--keys", type=_ints, default=[1, 100, 1000, 10000], help="configured key counts")
    parser.add_argument("--no-load", dest="load", action="store_false", help="in-process figures only")
    parser.add_argument("--quick", action="store_true", help="short runs")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=_ints, default=[1, 64])
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=["json", "stream"])
    args = parser.parse_args(argv)
    from .report import format_table

    rows = asyncio.run(micro(0.2 if args.quick else args.seconds, args.keys))
    print("auth skill on_connection, in-process (median of 100-call batches)\n")
    print(format_table(["case", "keys", "us/request", "calls"], rows))
    if args.load:
        print("\nunder load: robutler-kernel serve, scripted/echo, with and without the auth skill\n")
        print(load(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scale-out: three ``robutler-kernel serve`` replicas behind nginx, sharing Redis and
PostgreSQL, scraped by Prometheus; the setup docs/deployment.md walks an operator to.

Each replica runs the image's command with deploy's config (``tests/deploy/support.py``),
from a working directory of its own (each has its own milvus-lite file: the vector memory
shared by replicas is a Milvus server, which needs Docker; nothing here uses it). nginx runs
``deploy/nginx/robutler.conf`` with its upstream pointed at the three replicas and its
``listen`` on a free loopback port; Prometheus (Debian's package) scrapes the three metrics
ports once a second. It checks that a conversation continues across replicas (short-term
memory in Redis), a rate limit holds across them (GCRA buckets in Redis), the ledger stays
exact under concurrent paid requests spread over all three (PostgreSQL) and Prometheus'
query API sees the traffic of each replica. About 40 seconds; it skips, saying why, where
nginx, Prometheus, PostgreSQL or Redis is missing (.ci/run installs and starts them).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from robutler_kernel.testing import ServeProcess

from .support import (
    DEPLOY,
    PG_DSN,
    free_port,
    fresh_redis_db,
    image_cmd,
    image_layout,
    release_redis_db,
    require_services,
    serve_args,
)

pytestmark = pytest.mark.e2e

REPLICAS = 3
RATE = 20  # requests a minute per caller on the echo agent (ROBUTLER_REQUESTS_PER_MINUTE)
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
PROMETHEUS = shutil.which("prometheus")


def nginx_config(tmp: Path, upstreams: list[int], port: int) -> Path:
    """deploy/nginx/robutler.conf, its upstream the replicas and its listen a loopback
    port, in a main config that keeps every file nginx writes under ``tmp``."""
    site = (DEPLOY / "nginx" / "robutler.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in upstreams)
    site, n = re.subn(r"    server robutler:8000[^\n]*\n", servers, site)
    assert n == 1, "the upstream block of deploy/nginx/robutler.conf changed"
    site, n = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", site)
    assert n == 1
    (tmp / "robutler.conf").write_text(site)
    for d in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = tmp / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"  access_log off;\n  client_body_temp_path {tmp}/client;\n  proxy_temp_path {tmp}/proxy;\n"
        f"  fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n"
        f"  include {tmp}/robutler.conf;\n"
        "}\n"
    )
    return main


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; .ci/run installs it)")
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run installs it)")
    require_services()
    tmp = tmp_path_factory.mktemp("scale")
    redis_url = fresh_redis_db()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "MILVUS_"))}
    env.update(DATABASE_URL=PG_DSN, REDIS_URL=redis_url, ROBUTLER_REQUESTS_PER_MINUTE=str(RATE))
    metrics = [free_port() for _ in range(REPLICAS)]

    def start(i: int) -> ServeProcess:
        config, work = image_layout(tmp / f"replica{i}")
        return ServeProcess(config, cwd=work, env=env, args=serve_args(image_cmd(), metrics[i]), timeout=120)

    procs: list[Any] = []
    try:
        with ThreadPoolExecutor(REPLICAS) as pool:
            replicas = list(pool.map(start, range(REPLICAS)))
        procs.extend(replicas)
        lb_port = free_port()
        (tmp / "nginx").mkdir()
        conf = nginx_config(tmp / "nginx", [int(r.url.rsplit(":", 1)[1]) for r in replicas], lb_port)
        check = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp / "nginx")], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp / "nginx"), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(nginx)
        prom_port = free_port()
        prom_conf = tmp / "prometheus.yml"
        targets = ", ".join(f'"127.0.0.1:{p}"' for p in metrics)
        prom_conf.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: robutler\n    metrics_path: /metrics\n    static_configs: [{{targets: [{targets}]}}]\n"
        )
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={prom_conf}", f"--storage.tsdb.path={tmp / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        procs.append(prometheus)
        lb = f"http://127.0.0.1:{lb_port}"
        wait_http(f"{lb}/health")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
        yield {"lb": lb, "replicas": [r.url for r in replicas], "metrics": metrics, "env": env,
               "config": tmp / "replica0" / "etc" / "robutler" / "robutler.yaml",
               "prometheus": f"http://127.0.0.1:{prom_port}"}
    finally:
        for proc in reversed(procs):
            if isinstance(proc, ServeProcess):
                proc.stop()
            else:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        release_redis_db(redis_url)


def chat(base: str, agent: str, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{base}/{agent}/chat/completions", json={"messages": [{"role": "user", "content": text}]},
                      headers=headers or {}, timeout=30)


def test_nginx_passes_the_request_id_and_health(cluster: dict[str, Any]) -> None:
    r = httpx.get(f"{cluster['lb']}/health", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "healthy"
    rid = "req-" + uuid.uuid4().hex
    r = chat(cluster["lb"], "echo", "hi", {"X-Request-Id": rid, "X-Conversation-Id": uuid.uuid4().hex})
    # nginx passes X-Request-Id upstream (or its own); the answer's is the server's id.
    assert r.status_code == 200 and r.headers["x-request-id"], r.headers
    # A stream comes through nginx unbuffered, [DONE] last.
    with httpx.stream("POST", f"{cluster['lb']}/echo/chat/completions", timeout=30,
                      json={"messages": [{"role": "user", "content": "one two three"}], "stream": True}) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in s.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) >= 4


def test_a_conversation_continues_across_replicas(cluster: dict[str, Any]) -> None:
    conversation = {"X-Conversation-Id": "conv-" + uuid.uuid4().hex}
    prompts = []
    for url in cluster["replicas"]:  # turn 1 on replica 1, turn 2 on replica 2, ...
        r = chat(url, "echo", "hello again", conversation)
        assert r.status_code == 200, r.text
        prompts.append(r.json()["usage"]["prompt_tokens"])
    # The scripted model counts a token a word and one a message: each turn's prompt holds
    # the turns before it, which only Redis can have given the replica that answered.
    assert prompts[0] < prompts[1] < prompts[2], prompts
    assert prompts[2] - prompts[1] == prompts[1] - prompts[0]


def test_a_rate_limit_holds_across_replicas(cluster: dict[str, Any]) -> None:
    before = [_echo_requests(port) for port in cluster["metrics"]]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: chat(cluster["lb"], "echo", f"r{i}").status_code, range(3 * RATE)))
    ok, limited = statuses.count(200), statuses.count(429)
    # One bucket for the caller (nginx's X-Real-IP) in Redis: RATE a minute over all three
    # replicas together, less the two echo requests the first test sent through nginx (one
    # more may have refilled while the test ran); the rest refused.
    assert RATE - 2 <= ok <= RATE - 1 and ok + limited == 3 * RATE, statuses
    after = [_echo_requests(port) for port in cluster["metrics"]]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_the_ledger_stays_exact_under_concurrent_paid_requests(cluster: dict[str, Any]) -> None:
    out = subprocess.run(
        [*_cli(), "payments", "--config", str(cluster["config"]), "token", "create", "--balance", "5"],
        capture_output=True, text=True, env=cluster["env"], timeout=60, check=True,
    ).stdout
    token = re.search(r"rpt_[\w-]+", out).group(0)  # type: ignore[union-attr]  # base64url: - and _
    account = re.search(r"tok_\w+", out).group(0)  # type: ignore[union-attr]
    requests = 90

    def pay(i: int) -> tuple[int, str | None]:
        r = chat(cluster["lb"], "metered", f"paid {i}", {"X-Payment-Token": token})
        return r.status_code, r.headers.get("x-robutler-cost")

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(pay, range(requests)))
    assert results.count((200, "0.01")) == requests, [r for r in results if r != (200, "0.01")]
    available, reserved, spent = asyncio.run(_account(account))
    assert (available, reserved, spent) == (Decimal("5") - Decimal("0.01") * requests, 0, Decimal("0.01") * requests)
    served = [_metric(port, 'robutler_requests_total{agent="metered",method="POST",status="200"}') for port in cluster["metrics"]]
    assert all(s > 0 for s in served) and sum(s for s in served) >= requests, served


def test_prometheus_scrapes_every_replica(cluster: dict[str, Any]) -> None:
    # Readiness probes run every check and set robutler_agent_health (as a served
    # kernel's own round does every server.health.interval seconds).
    for url in cluster["replicas"]:
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
    # A little traffic of our own, then wait for it in Prometheus (1 s scrapes).
    for _ in range(3):
        assert chat(cluster["lb"], "metered", "x").status_code == 402
    want = sum(_metric(p, 'robutler_requests_total{agent="metered",method="POST",status="402"}') for p in cluster["metrics"])
    deadline = time.monotonic() + 30
    while True:
        up = _query(cluster["prometheus"], 'up{job="robutler"}')
        seen = _query(cluster["prometheus"], 'sum(robutler_requests_total{agent="metered",status="402"})')
        if len(up) == REPLICAS and all(v == 1 for v in up.values()) and seen and next(iter(seen.values())) >= want:
            break
        assert time.monotonic() < deadline, (up, seen, want)
        time.sleep(0.5)
    per_instance = _query(cluster["prometheus"], 'sum by (instance) (robutler_requests_total{agent="echo"})')
    assert len(per_instance) == REPLICAS and all(v > 0 for v in per_instance.values()), per_instance
    health = _query(cluster["prometheus"], "min by (instance) (robutler_agent_health)")
    assert len(health) == REPLICAS and all(v == 1 for v in health.values()), health


# -- helpers --------------------------------------------------------------------------


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "robutler_kernel.cli"]


def _metric(port: int, series: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    name, _, labels = series.partition("{")
    want = set(labels.rstrip("}").split(",")) if labels else set()
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and want <= set((m.group(2) or "").split(",")):
            total += float(m.group(3))
    return total


def _echo_requests(port: int) -> float:
    return _metric(port, 'robutler_requests_total{agent="echo"}')


def _query(prometheus: str, expr: str) -> dict[str, float]:
    data = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert data["status"] == "success", data
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in data["data"]["result"]}


async def _account(account: str) -> tuple[Decimal, Decimal, Decimal]:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        row = await conn.fetchrow("SELECT available, reserved, spent FROM robutler_payments.accounts WHERE id = $1", account)
    finally:
        await conn.close()
    assert row is not None, account
    micro = Decimal(1_000_000)  # the ledger keeps micro-credits, as integers
    return Decimal(row["available"]) / micro, Decimal(row["reserved"]) / micro, Decimal(row["spent"]) / micro

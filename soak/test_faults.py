"""The provider fault matrix (faults x transports x {JSON, stream}) against a served kernel
under load.

The table is the test kit's (:mod:`robutler_kernel.testing.faults`, also run in-process by
``tests/plugins/test_fault_matrix.py``). Here each transport gets a ``robutler-kernel
serve`` process with two agents: ``faulty`` in front of a fake upstream that injects each
fault in turn, and ``healthy`` in front of a separate zero-latency fake, which background
clients keep busy meanwhile. Every fault must get its documented answer, and not one
healthy request may fail: a broken upstream stays that agent's problem.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from robutler_kernel.testing import FakeAnthropic, FakeOpenAI

from .harness import FakeUpstream, Row, Summary, openai_skill, percentile, serve, server_settings

faults = pytest.importorskip("robutler_kernel.testing.faults")

TRANSPORTS = faults.TRANSPORTS


class Background:
    """Clients sending healthy requests (JSON and streamed) until stopped."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                stream = n % 2 == 1
                body = {"model": "healthy", "stream": stream, "messages": [{"role": "user", "content": "ping pong"}]}
                started = time.perf_counter()
                try:
                    response = client.post(self.url, json=body)
                    ok = response.status_code == 200 and (
                        response.text.rstrip().endswith("data: [DONE]") if stream else "choices" in response.json())
                    if not ok:
                        self.errors.append(f"{response.status_code}: {response.text[-200:]}")
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    if ok:
                        self.latencies.append(time.perf_counter() - started)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    with FakeOpenAI() as openai_fake, FakeAnthropic() as anthropic_fake:
        yield {"openai": openai_fake, "anthropic": anthropic_fake}


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_fault_matrix_under_load(transport: str, fakes: dict[str, Any], fake_upstream: FakeUpstream,
                                 workdir: Path, summary: Summary, soak_options: dict[str, Any]) -> None:
    provider, settings = TRANSPORTS[transport]
    fake = fakes[provider]
    rounds = max(1, round(soak_options["minutes"]))
    problems: list[str] = []
    checked = 0
    base = fake.base_url + "/v1" if provider == "openai" else fake.base_url
    healthy = openai_skill(fake_upstream.base_url, **(settings if provider == "openai" else {}))
    config = {"server": server_settings(), "agents": {
        "faulty": faults.agent_config(provider, base, **settings),
        "healthy": {"model": "openai/fake-model", "skills": {"openai": healthy}}}}
    process = serve(workdir, config, name=f"faults-{transport}.yaml")
    try:
        background = Background(process.url + "/v1/chat/completions")
        try:
            for _ in range(rounds):
                for item in faults.FAULTS:
                    if item.refused:
                        continue
                    for stream in (False, True):
                        fake.reset()
                        item.inject(fake)
                        problems += [f"{item.name} {'stream' if stream else 'json'}: {p}"
                                     for p in _ask(process.url, item, stream)]
                        checked += 1
        finally:
            background.stop()
    finally:
        process.stop()
    refused = next(f for f in faults.FAULTS if f.refused)
    refused_config = {"server": server_settings(), "agents": {
        "faulty": faults.agent_config(provider, faults.refused_url(provider), **settings)}}
    with serve(workdir, refused_config, name=f"faults-{transport}-refused.yaml") as process:
        for stream in (False, True):
            problems += [f"refused {'stream' if stream else 'json'}: {p}" for p in _ask(process.url, refused, stream)]
            checked += 1
    summary.add(Row(f"faults x {transport} (JSON+stream), healthy agent beside", checked + len(background.latencies)
                    + len(background.errors), checked - len(problems) + len(background.latencies),
                    len(problems) + len(background.errors), percentile(background.latencies, 0.5),
                    percentile(background.latencies, 0.99), max(background.latencies, default=None),
                    note=f"{checked} fault cases, {len(background.latencies)} healthy requests beside them",
                    error_sample=(problems + background.errors or [None])[0]))
    assert not problems, problems
    assert not background.errors, background.errors[:5]


def _ask(url: str, item: Any, stream: bool) -> list[str]:
    body = {"model": "faulty", "stream": stream, "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(timeout=30) as client:
        if not stream:
            response = client.post(url + "/v1/chat/completions", json=body)
            try:
                payload = response.json()
            except ValueError:
                payload = response.text
            return list(faults.json_problems(item, response.status_code, response.headers, payload))
        with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
            text = response.read().decode()
            return list(faults.stream_problems(item, response.status_code, response.headers, text))

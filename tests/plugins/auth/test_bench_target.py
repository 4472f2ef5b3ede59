"""Smoke test of ``bench/targets_auth.py``: its target config loads and its cases run.

Not a benchmark: no timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root: `bench`

from bench import targets_auth
from bench.targets import server_config
from robutler_kernel.config import config_from_dict

from .helpers import build


async def test_auth_target_config_is_valid_and_accepts_the_load_generators_key() -> None:
    target = targets_auth.AUTH_TARGETS["auth-key"]
    config = server_config(target, "http://127.0.0.1:9/v1", port=0, metrics_port=None)
    config_from_dict(config)
    agents = config["agents"]
    kernel = build(agents)
    skill = next(s for s in kernel.agent("bench").skills if s.name == "auth")
    identity = await skill.authenticate({"authorization": "Bearer bench"}, kernel.agents["bench"])  # type: ignore[attr-defined]
    assert identity.user_id == "bench"


async def test_in_process_cases_all_run() -> None:
    rows = await targets_auth.micro(0.01, [1, 10])
    assert [r[0] for r in rows] == [
        "anonymous (allowed)", "api key", "api key", "api key, refused (401)",
        "jwt HS256", "jwt RS256 (2048-bit)", "portal, cached answer",
    ]
    assert all(r[2] > 0 and r[3] >= 500 for r in rows)

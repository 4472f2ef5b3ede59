"""Shared helpers of the rate limit tests: a clock the test moves, kernels with the plugin."""

from __future__ import annotations

import uuid
from typing import Any

import robutler_plugin_auth as auth
import robutler_plugin_ratelimit as ratelimit
import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.config import config_from_dict

REDIS_URL = "redis://127.0.0.1:6379/15"
ALICE = "alice-key-0123456789abcdefghijklmnop"
BOB = "bob-key-0123456789abcdefghijklmnopqrs"
CHAT = {"messages": [{"role": "user", "content": "one two three"}]}


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unique_prefix() -> str:
    """A Redis key prefix of one test."""
    return f"robutler:test:rl:{uuid.uuid4().hex[:12]}:"


def build(agents: dict[str, dict[str, Any]], settings: dict[str, Any] | None = None, *, with_auth: bool = False) -> Kernel:
    """A kernel with the rate limit plugin (and auth with alice's and bob's keys)."""
    specs = {}
    for name, limits in agents.items():
        skills: dict[str, Any] = {"rate_limit": limits}
        if with_auth:
            skills["auth"] = {"api_keys": [{"key": ALICE, "user_id": "alice"}, {"key": BOB, "user_id": "bob"}]}
        specs[name] = {"model": "scripted/echo", "skills": skills}
    config = config_from_dict({"server": {"metrics_port": None}, "agents": specs,
                               "plugins": {"ratelimit": settings or {}}})
    return Kernel(config, plugins=[scripted, ratelimit, auth], discover=False)


def backend(kernel: Kernel) -> Any:
    """The kernel's limiter (started)."""
    return kernel.state[ratelimit.STATE_KEY]

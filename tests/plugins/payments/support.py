"""Helpers of the payments tests: a stand-in ``auth`` skill, a priced tool, kernel builders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import robutler_plugin_payments as payments
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import make_kernel
from robutler_specs import Identity, RequestContext, Skill, hookimpl, pricing, tool
from tests.postgres import PG_DSN

#: The PostgreSQL the tests use.
PAYMENTS_PG_DSN = PG_DSN

USER_HEADER = "x-test-user"


class HeaderAuth(Skill):
    """A stand-in ``auth`` skill: the caller is whoever ``X-Test-User`` names."""

    name = "auth"
    priority = 5

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        user = ctx.headers.get(USER_HEADER)
        if user:
            ctx.identity = Identity(user_id=user, source="test-header")


class Shop(Skill):
    """Priced tools; counts how often each really ran."""

    name = "shop"
    calls: dict[str, int] = {}

    @tool
    @pricing(credits=0.3)
    def lookup(self, item: str) -> str:
        """Look an item up.

        Args:
            item: what to look up
        """
        Shop.calls["lookup"] = Shop.calls.get("lookup", 0) + 1
        return f"{item}: in stock"

    @tool
    @pricing(credits=5)
    def appraise(self, item: str) -> str:
        """An expensive appraisal.

        Args:
            item: what to appraise
        """
        Shop.calls["appraise"] = Shop.calls.get("appraise", 0) + 1
        return f"{item}: priceless"

    @tool
    def free_hint(self) -> str:
        """A free tool."""
        return "hint"


def agent(settings: dict[str, Any], *, model: str = "scripted/echo", scripts: dict[str, Any] | None = None,
          chunk_delay: float = 0.0, shop: bool = False, **payments_config: Any) -> dict[str, Any]:
    """One agent's config with the payments skill on ``settings`` (the ledger part)."""
    skills: dict[str, Any] = {
        "payments": {"models": {"scripted/*": {"prompt": 0, "completion": 0}}, **settings, **payments_config},
        "scripted": {"scripts": scripts or {}, "chunk_delay": chunk_delay},
    }
    if shop:
        skills["shop"] = None
    return {"model": model, "skills": skills}


def kernel(agents: dict[str, dict[str, Any]], *extra: Any) -> Any:
    """A kernel with the scripted model, payments, the stand-in auth and the shop."""
    return make_kernel(agents, plugins=[scripted, payments, HeaderAuth, Shop, *extra])


def user(name: str, **headers: str) -> dict[str, str]:
    """Request headers of user ``name`` (plus any others)."""
    return {USER_HEADER: name, **headers}


def chat(text: str, **body: Any) -> dict[str, Any]:
    """A chat completion request body."""
    return {"messages": [{"role": "user", "content": text}], **body}


def credits(micro: int) -> Decimal:
    """Micro-credits as exact credits."""
    return Decimal(micro).scaleb(-6)


def micro(value: str | int | Decimal) -> int:
    """Credits as micro-credits (exact)."""
    return int(Decimal(str(value)) * 1_000_000)

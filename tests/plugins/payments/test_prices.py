"""Money, prices, config validation and discovery of the payments plugin."""

from __future__ import annotations

import importlib.metadata
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robutler_plugin_payments import PaymentsConfig, PaymentsSkill
from robutler_plugin_payments.money import FINE, fine_to_micro, format_credits, to_micro
from robutler_plugin_payments.pricing import PriceTable
from robutler_specs import ENTRY_POINT_GROUP, ConfigError, ToolSpec, build_tool_spec, pricing, tool

from .support import agent, kernel


def test_entry_point_is_discoverable() -> None:
    [ep] = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == "payments"]
    module = ep.load()
    assert module.robutler_skills() == [PaymentsSkill]
    assert PaymentsSkill.requires == ("auth",)


@given(st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
def test_credits_round_trip_exactly_through_micro_credits(value: Decimal) -> None:
    assert Decimal(format_credits(to_micro(value))) == value
    assert to_micro(str(value)) == to_micro(value)


def test_money_edges() -> None:
    assert to_micro(0.1) == 100_000  # the float's shortest repr, not its binary value
    assert to_micro("0.0000015", "floor") == 1 and to_micro("0.0000015", "ceil") == 2
    assert format_credits(10_000_000) == "10" and format_credits(0) == "0" and format_credits(-1_500_000) == "-1.5"
    for bad in ["", "abc", "nan", "inf"]:
        with pytest.raises(ValueError):
            to_micro(bad)


def _table(**config: object) -> PriceTable:
    return PriceTable(msgspec.convert(config, PaymentsConfig, strict=False))


def test_model_prices_match_exact_then_provider_then_star() -> None:
    table = _table(models={
        "openai/gpt-4o": {"prompt": "2.5", "completion": 10},
        "openai/*": {"prompt": 1, "completion": 2, "markup": 0},
        "*": {"prompt": "0.1", "completion": "0.2"},
    }, markup="0.2")
    exact, provider, star = table.model("openai/gpt-4o"), table.model("openai/gpt-4o-mini"), table.model("x/y")
    assert exact and provider and star
    # 2.5 credits per 1K prompt tokens + 20% = 3000 micro-credits a token (in fine units).
    assert exact.cost(1, 0) == 3000 * FINE and exact.cost(0, 1) == 12000 * FINE
    assert provider.cost(1000, 1000) == 3_000_000 * FINE  # its own markup 0
    assert star.cost(3, 0) == 360 * FINE
    # A price finer than a micro-credit a token stays exact until the total is rounded.
    tiny = _table(models={"*": {"prompt": "0.000001", "completion": "0.0000015"}}).model("a/b")
    assert tiny is not None and tiny.cost(1, 1) == 2_500_000
    assert fine_to_micro(tiny.cost(1000, 1000)) == 3 and fine_to_micro(tiny.cost(1, 0)) == 1
    assert _table().model("openai/gpt-4o") is None


def test_cached_prompt_tokens_have_their_own_prices() -> None:
    from robutler_specs import UsageRecord

    table = _table(models={
        "anthropic/*": {"prompt": 3, "completion": 15, "cache_read": "0.3", "cache_write": "3.75"},
        "openai/*": {"prompt": 2, "completion": 8},
    }, markup=0)
    claude, gpt = table.model("anthropic/claude-x"), table.model("openai/gpt-x")
    assert claude and gpt
    # 1,000 prompt tokens of which 600 read from the cache and 300 written to it.
    record = UsageRecord(kind="llm", name="anthropic/claude-x", prompt_tokens=1000, completion_tokens=0,
                         cache_read_tokens=600, cache_write_tokens=300)
    micro = 100 * 3000 + 600 * 300 + 300 * 3750  # micro-credits: uncached, read, written
    assert claude.record_cost(record) == micro * FINE
    assert gpt.cost(1000, 0, 600, 300) == gpt.cost(1000, 0)  # no cache prices: all at the prompt price
    assert claude.describe()["cache_read_per_1k"] == "0.3" and gpt.describe()["cache_read_per_1k"] == "2"


def test_tool_price_config_override_then_decorator() -> None:
    @tool
    @pricing(credits=0.25)
    def search(q: str) -> str:
        """Search."""
        return q

    spec: ToolSpec = build_tool_spec(search)
    table = _table(tools={"other": "1.5"})
    assert table.tool("search", spec) == 250_000
    assert table.tool("other", None) == 1_500_000
    assert table.tool("unpriced", None) == 0
    assert _table(tools={"search": 0}).tool("search", spec) == 0


@pytest.mark.parametrize(("config", "message"), [
    ({"default_reservation": "0.5", "request_fee": 1}, "default_reservation (0.5) must be at least"),
    ({"backend": "postgres"}, "needs a dsn"),
    ({"schema": "x; drop"}, "plain SQL identifier"),
    ({"request_fee": -1}, "request_fee must not be negative"),
    ({"models": {"a/b": {"prompt": -1}}}, "must not be negative"),
    ({"reserve": 3}, "unknown field `reserve`"),
])
def test_bad_config_is_rejected_with_the_reason(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        kernel({"bot": {"model": "scripted/echo", "skills": {"payments": {"models": {"*": {}}, **config}}}})
    assert "agents.bot.skills.payments" in str(caught.value) and message in str(caught.value)


def test_a_model_without_a_price_is_a_config_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError) as caught:
        kernel({"bot": agent({"path": f"{tmp_path}/l.db"}, models={"openai/*": {"prompt": 1}})})
    assert "no price for model 'scripted/echo'" in str(caught.value) and "'scripted/*'" in str(caught.value)
    kernel({"bot": agent({"path": f"{tmp_path}/l.db"}, models={}, require_known_models=False)})

"""What one request has used, and what it costs.

A :class:`Meter` lives in ``ctx.state["payments"]`` from the reservation to the
settlement. The bill is computed from ``ctx.usage`` (the kernel's record of every LLM
call) and the meter's own record of priced tool calls, plus an estimate for an LLM call
that was cut off (client gone mid-stream) before the provider reported usage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from robutler_specs import Message, UsageRecord

from .money import FINE, MICRO, fine_from_credits, fine_to_micro, format_credits, to_float
from .pricing import FREE, PriceTable

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4

#: Tool charge states: admitted (running), done (charged), failed (charged only with
#: ``charge_failed_tools``).
RUNNING, DONE, FAILED = "running", "done", "failed"


def estimate_tokens(text: str) -> int:
    """About four characters a token, rounded up (the kernel's estimate too)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Iterable[Message]) -> int:
    """Estimated prompt tokens of a message list: text and tool calls, plus 4 per message."""
    total = 0
    for message in messages:
        text = message.text()
        for call in message.tool_calls or ():
            text += call.function.name + call.function.arguments
        total += estimate_tokens(text) + TOKENS_PER_MESSAGE
    return total


@dataclass
class PendingCall:
    """An LLM call in progress: enough to bill it if it never completes."""

    model: str
    prompt_tokens: int
    records_before: int
    delivered_chars: int = 0


@dataclass
class ToolCharge:
    """A priced tool call the meter admitted (``price`` in micro-credits)."""

    name: str
    price: int
    state: str = RUNNING


@dataclass
class Meter:
    """The payment state of one request (``ctx.state["payments"]``).

    Other skills may read it: ``account_id``, ``source`` (``"account"`` or ``"token"``),
    ``reserved`` (micro-credits) and :meth:`remaining_credits` (e.g. to call another agent
    with a bounded ``X-Authorized-Amount``).
    """

    account_id: str
    source: str
    reserved: int
    request_id: str
    prices: PriceTable
    tools: dict[str, ToolCharge] = field(default_factory=dict)
    pending: PendingCall | None = None
    settled: bool = False

    def llm_cost(self, usage: Iterable[UsageRecord]) -> int:
        """Fine units of this agent's own LLM calls recorded so far (another agent's calls
        in the request, ``record.agent``, are priced by that agent)."""
        total = 0
        for record in usage:
            if record.kind == "llm" and record.agent is None:
                price = self.prices.model(record.name) or FREE
                total += price.record_cost(record)
        return total

    def committed(self, usage: Iterable[UsageRecord]) -> int:
        """Fine units the request has used or is about to use: the fee, recorded LLM
        calls, every admitted tool call that has not failed, and what other agents of the
        chain cost (handoffs and agent calls spend the same budget)."""
        tools = sum(t.price for t in self.tools.values() if t.state != FAILED)
        return self.prices.request_fee_fine + self.llm_cost(usage) + tools * FINE + agents_cost(usage)

    def remaining(self, usage: Iterable[UsageRecord]) -> int:
        """Fine units of the reservation not yet committed (``usage`` is ``ctx.usage``)."""
        return self.reserved * FINE - self.committed(usage)

    def remaining_credits(self, usage: Iterable[UsageRecord]) -> float:
        """:meth:`remaining` in credits, never negative (``usage`` is ``ctx.usage``)."""
        return max(self.remaining(usage) // FINE, 0) / MICRO


def agents_cost(usage: Iterable[UsageRecord], *, paid: bool | None = None) -> int:
    """Fine units other agents of the chain cost (``kind="agent"`` records); with ``paid``,
    only those already charged to the payer (``True``) or not (``False``)."""
    total = 0
    for record in usage:
        if record.kind == "agent" and record.credits and (paid is None or record.paid is paid):
            total += fine_from_credits(Decimal(str(record.credits)))
    return total


@dataclass
class Bill:
    """The cost of a request: ``total`` micro-credits and a breakdown for the ledger."""

    total: int
    metered: bool
    detail: dict[str, Any]

    def detail_json(self) -> str:
        """The breakdown as JSON, stored with the ``charge`` transaction."""
        return msgspec.json.encode(self.detail).decode()


def _credits(fine: int) -> str:
    return format_credits(fine_to_micro(fine))


def bill(
    meter: Meter, table: PriceTable, usage: list[UsageRecord], *, agent: str, charge_failed_tools: bool,
    error: BaseException | None,
) -> Bill:
    """The bill of a finished request; fills ``record.credits`` of its LLM and tool records.

    Charged: the request fee; every LLM call at its model's price (markup included); every
    admitted tool call that completed (failed ones only with ``charge_failed_tools``); and
    for an LLM call cut off before it reported usage (client gone), the estimated prompt
    plus the estimated tokens of the text already delivered. ``metered`` is false when
    nothing was used at all (then an error costs nothing, not even the fee).
    """
    total = table.request_fee_fine
    llm: list[dict[str, Any]] = []
    for record in usage:
        if record.kind != "llm" or record.agent is not None:
            continue
        price = table.model(record.name) or FREE
        cost = price.record_cost(record)
        record.credits = cost / (MICRO * FINE)
        total += cost
        entry: dict[str, Any] = {
            "model": record.name, "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens, "credits": _credits(cost),
        }
        if record.cache_read_tokens or record.cache_write_tokens:
            entry["cache_read_tokens"] = record.cache_read_tokens
            entry["cache_write_tokens"] = record.cache_write_tokens
        llm.append(entry)
    charged_states = {DONE, FAILED} if charge_failed_tools else {DONE}
    tools = [t for t in meter.tools.values() if t.state in charged_states and t.price]
    tool_prices = {t.name: t.price for t in tools}
    for record in usage:
        if record.kind in ("tool", "handoff") and record.name in tool_prices and (record.ok or charge_failed_tools):
            record.credits = to_float(tool_prices[record.name])
    total += sum(t.price for t in tools) * FINE
    # Remote agents charged this agent's own credentials: their cost is passed on. (A local
    # handoff's target charged the payer itself: ``paid``, not billed again here.)
    passed_on = [r for r in usage if r.kind == "agent" and not r.paid and r.credits]
    total += agents_cost(passed_on)
    interrupted = None
    pending = meter.pending
    llm_records = sum(1 for r in usage if r.kind == "llm")
    if pending is not None and llm_records == pending.records_before and pending.delivered_chars:
        completion = -(-pending.delivered_chars // CHARS_PER_TOKEN)
        price = table.model(pending.model) or FREE
        cost = price.cost(pending.prompt_tokens, completion)
        total += cost
        interrupted = {
            "model": pending.model, "prompt_tokens": pending.prompt_tokens,
            "completion_tokens": completion, "estimated": True, "credits": _credits(cost),
        }
    detail: dict[str, Any] = {
        "agent": agent,
        "fee": format_credits(table.request_fee),
        "llm": llm,
        "tools": [{"name": t.name, "credits": format_credits(t.price)} for t in tools],
    }
    if passed_on:
        detail["agents"] = [{"agent": r.name, "credits": str(r.credits)} for r in passed_on]
    if interrupted is not None:
        detail["interrupted"] = interrupted
    if error is not None:
        detail["error"] = type(error).__name__
    metered = bool(llm or tools or interrupted or passed_on)
    return Bill(fine_to_micro(total), metered, detail)


__all__ = [
    "Bill",
    "Meter",
    "PendingCall",
    "ToolCharge",
    "agents_cost",
    "bill",
    "estimate_prompt_tokens",
    "estimate_tokens",
]

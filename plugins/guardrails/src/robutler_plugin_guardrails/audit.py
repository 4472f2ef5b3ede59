"""The audit trail: every block, redaction and flag, in the log and as a counter.

What is recorded: the rule, the action, where it happened (``input``, ``output``,
``tool_arguments``, ``tool_result``, ``handoff``, ``agent_call``, ``tool_policy``), the agent,
the request id and how many matches. Never the matched text: a redacted secret must not
reappear in a log line or a metric.

Labels are bounded: agents are configured (or resolved) names, rules are the configured
patterns and the built-in names, actions and places are fixed lists.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from prometheus_client import Counter

from robutler_specs import RequestContext

log = logging.getLogger("robutler.guardrails")

EVENTS = Counter(
    "robutler_guardrails_events_total",
    "Guardrails blocks, redactions and flags (matches counted)",
    ["agent", "rule", "action", "where"],
)

_children: dict[tuple[str, str, str, str], Any] = {}


class Event(msgspec.Struct, frozen=True):
    """One recorded guardrails decision (``ctx.state["guardrails"].events``)."""

    rule: str
    action: str
    where: str
    count: int = 1


def record(ctx: RequestContext | None, agent: str, rule: str, action: str, where: str, count: int = 1) -> Event:
    """Log and count one decision; add it to the request's events."""
    key = (agent, rule, action, where)
    child = _children.get(key)
    if child is None:
        child = _children[key] = EVENTS.labels(*key)
    child.inc(count)
    request_id = ctx.request_id if ctx is not None else "-"
    level = logging.WARNING if action == "block" else logging.INFO
    log.log(level, "guardrails: agent=%s request=%s rule=%s action=%s where=%s count=%d",
            agent, request_id, rule, action, where, count)
    event = Event(rule, action, where, count)
    if ctx is not None:
        state = ctx.state.get("guardrails")
        if state is not None:
            state.events.append(event)
    return event


__all__ = ["EVENTS", "Event", "log", "record"]

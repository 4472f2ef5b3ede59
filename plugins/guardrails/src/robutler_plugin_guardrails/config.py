"""The ``guardrails`` skill's configuration (``agents.<agent>.skills.guardrails``).

Only the shape is checked here; patterns are compiled (and refused when RE2 cannot run
them) when the skill is built, with errors naming the agent and the rule.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .detectors import KINDS, Kind, Style

#: What a rule does when it matches: refuse the request (400 ``content_blocked``), replace
#: the match, or only record it.
Action = Literal["block", "redact", "flag"]


class PatternRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A configured pattern (``patterns:``), checked on what comes in.

    :ivar name: the rule's name: in errors, logs, metrics and the admin tools.
    :ivar pattern: an RE2 regular expression (no backreferences or look-around).
    :ivar action: ``block``, ``redact`` (the match becomes ``[REDACTED:<name>]``) or ``flag``.
    :ivar ignore_case: match regardless of case.
    """

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    pattern: Annotated[str, msgspec.Meta(min_length=1)]
    action: Action = "block"
    ignore_case: bool = True


class InjectionConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Prompt-injection heuristics (``injection:``).

    :ivar enabled: run them.
    :ivar action: ``flag`` (default: the heuristics have false positives, see the docs),
        ``block`` or ``redact`` (the matched phrases become ``[REDACTED:injection]``).
    :ivar threshold: the score at which a text counts as an injection attempt (each signal
        adds its weight; 1.0 is one strong signal).
    """

    enabled: bool = True
    action: Action = "flag"
    threshold: Annotated[float, msgspec.Meta(gt=0)] = 1.0


class PIIConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """PII and secret redaction (``pii:``).

    :ivar detect: which kinds to find (default: all).
    :ivar replacement: ``label`` (``[EMAIL]``), ``hash`` (``[EMAIL:3f2a9c1b0d]``, an HMAC
        under ``hash_key``) or ``mask`` (``j***@example.com``, ``************1111``).
    :ivar hash_key: the HMAC key of ``hash`` (``"${GUARDRAILS_HASH_KEY}"``); when unset a
        random key per process, so tokens differ between replicas and restarts.
    :ivar action: ``redact`` (default), ``block`` (refuse input holding PII; output and
        tool results are redacted anyway) or ``flag``.
    :ivar input: redact what the client sends, before any model sees it.
    :ivar output: redact the answer (streamed exactly: see the docs).
    :ivar tool_arguments: redact the arguments of tool calls before the tool runs.
    :ivar tool_results: redact what tools return before the model reads it.
    :ivar handoffs: redact what leaves through a handoff or an agent-to-agent call.
    :ivar token_min_length: the shortest unlabelled token taken for a secret.
    :ivar token_min_entropy: the Shannon entropy (bits per character) from which such a
        token (with upper case, lower case and digits) is taken for a secret.
    """

    detect: list[Kind] = msgspec.field(default_factory=lambda: list(KINDS))
    replacement: Style = "label"
    hash_key: str | None = None
    action: Action = "redact"
    input: bool = True
    output: bool = True
    tool_arguments: bool = True
    tool_results: bool = True
    handoffs: bool = True
    token_min_length: Annotated[int, msgspec.Meta(ge=16, le=128)] = 32
    token_min_entropy: Annotated[float, msgspec.Meta(ge=0, le=8)] = 4.2


class PolicyConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the agent may send a conversation, and which tools it may use (``policy:``).

    :ivar allow_agents: local agents it may hand off to or ask; ``None``: any.
    :ivar allow_domains: hosts of remote agents it may hand off to or ask
        (``partner.example`` or ``*.partner.example``); ``None``: any.
    :ivar deny_tools: tool names (shell-style wildcards: ``delete_*``) never run; the model
        does not see them, and a call to one is refused with a reason it reads.
    :ivar agent_call_tools: tools that call another agent, and the argument naming it
        (the nli plugin's ``ask_agent(agent=...)``), checked against the two lists above.
    """

    allow_agents: list[str] | None = None
    allow_domains: list[str] | None = None
    deny_tools: list[str] = []
    agent_call_tools: dict[str, str] = msgspec.field(default_factory=lambda: {"ask_agent": "agent"})


class GuardrailsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``guardrails`` skill (``agents.<agent>.skills.guardrails``).

    :ivar max_input_chars: the most characters the request's messages may hold in all
        (blocked above it); ``None`` for no limit.
    :ivar input_roles: the roles of the client's messages that input rules check (the
        system prompt and earlier answers are the operator's and the agent's own).
    :ivar patterns: configured patterns, each with its action.
    :ivar injection: prompt-injection heuristics.
    :ivar pii: PII and secret redaction.
    :ivar check_tool_results: run ``patterns`` and ``injection`` on what the agent's own
        tools return (indirect injection through fetched pages, files, e-mails); a block
        there replaces the result with a refusal the model reads.
    :ivar policy: handoffs, agent-to-agent calls and tools.
    :ivar offer_tools: offer the skill's tools (``analyze_content_safety`` to every caller,
        the rule tools to admins).
    """

    max_input_chars: Annotated[int, msgspec.Meta(gt=0)] | None = 100_000
    input_roles: list[str] = msgspec.field(default_factory=lambda: ["user", "tool"])
    patterns: list[PatternRule] = []
    injection: InjectionConfig = msgspec.field(default_factory=InjectionConfig)
    pii: PIIConfig = msgspec.field(default_factory=PIIConfig)
    check_tool_results: bool = True
    policy: PolicyConfig = msgspec.field(default_factory=PolicyConfig)
    offer_tools: bool = True


__all__ = ["Action", "GuardrailsConfig", "InjectionConfig", "PIIConfig", "PatternRule", "PolicyConfig"]

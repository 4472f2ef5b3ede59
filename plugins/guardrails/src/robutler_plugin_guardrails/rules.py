"""One agent's compiled rules: configured patterns, injection heuristics, PII, policy.

Built once when the agent is built (patterns compiled by RE2, refused with an error naming
the agent and the rule when RE2 cannot run them) and shared by every request of the agent.
The only thing that changes afterwards is :attr:`Rules.overrides`, set by an admin through
the ``set_guardrail_rule`` tool.
"""

from __future__ import annotations

import fnmatch
import functools
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
import re2

from robutler_specs import ConfigError, Handoff, Message

from .config import Action, GuardrailsConfig, PatternRule
from .detectors import Redactor, compile_re2
from .injection import InjectionScorer

Setting = Literal["block", "redact", "flag", "off"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that matched a text: its name, the action taken, how many matches."""

    rule: str
    action: Action
    count: int


class Rules:
    """The guardrails of one agent.

    :param config: the skill's config.
    :param where: ``agents.<agent>.skills.guardrails``, for error messages.
    :param handoffs: the agent's handoff targets.
    """

    def __init__(self, config: GuardrailsConfig, where: str, handoffs: list[Handoff]) -> None:
        self.config = config
        self.patterns: list[tuple[PatternRule, Any]] = []
        seen: set[str] = set()
        for i, rule in enumerate(config.patterns):
            if rule.name in seen or rule.name in BUILT_IN:
                raise ConfigError(f"{where}.patterns[{i}]: the name {rule.name!r} is used twice (or is a built-in rule's); rename it")
            seen.add(rule.name)
            try:
                self.patterns.append((rule, compile_re2(rule.pattern, ignore_case=rule.ignore_case)))
            except re2.error as exc:
                raise ConfigError(
                    f"{where}.patterns[{i}] ({rule.name}): RE2 cannot run this pattern ({_reason(exc)}); it "
                    "runs in linear time, so backreferences and look-around are not available: rewrite "
                    "the pattern without them"
                ) from None
        self.injection = InjectionScorer(config.injection.threshold) if config.injection.enabled else None
        pii = config.pii
        self.redactor = Redactor(
            pii.detect,
            style=pii.replacement,
            hash_key=pii.hash_key.encode() if pii.hash_key else secrets.token_bytes(32),
            token_min_length=pii.token_min_length,
            token_min_entropy=pii.token_min_entropy,
        )
        policy = config.policy
        self.handoffs = {h.tool_name: h for h in handoffs}
        #: Handoff tools the policy refuses, with the reason the model reads.
        self.denied_handoffs = {
            name: reason for name, h in self.handoffs.items() if (reason := self.target_refusal(h.agent)) is not None
        }
        self._deny = list(policy.deny_tools)
        self.denied_tool = functools.lru_cache(maxsize=1024)(self._denied_tool)
        #: Admin changes (``set_guardrail_rule``): rule name to action or ``"off"``.
        self.overrides: dict[str, Setting] = {}

    # -- what applies ------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every rule name an admin may change."""
        return [rule.name for rule, _ in self.patterns] + ["injection", "pii"]

    def action_of(self, rule: str, default: Action) -> Action | None:
        """The action of ``rule`` now (``None``: switched off)."""
        setting = self.overrides.get(rule, default)
        return None if setting == "off" else setting

    def _denied_tool(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._deny)

    def hides(self, name: str) -> bool:
        """Whether the tool ``name`` is kept from the model (denied, or a refused handoff)."""
        return name in self.denied_handoffs or (bool(self._deny) and self.denied_tool(name))

    @property
    def hides_any(self) -> bool:
        """Whether any tool may be hidden (else ``before_llm_call`` has nothing to do)."""
        return bool(self._deny or self.denied_handoffs)

    def target_refusal(self, target: str) -> str | None:
        """Why the policy refuses sending a conversation to ``target`` (a local agent's name or
        a URL), or ``None`` when it may go."""
        policy = self.config.policy
        if target.startswith(("http://", "https://")):
            if policy.allow_domains is None:
                return None
            host = (urlsplit(target).hostname or "").lower()
            if any(_host_matches(host, d) for d in policy.allow_domains):
                return None
            return f"the host {host!r} is not one this agent may send conversations to (guardrails policy.allow_domains)"
        if policy.allow_agents is None or target in policy.allow_agents:
            return None
        return f"agent {target!r} is not one this agent may send conversations to (guardrails policy.allow_agents)"

    # -- texts -------------------------------------------------------------------------------

    def inspect(self, text: str, *, patterns: bool = True, pii: bool = True) -> tuple[str, list[Finding]]:
        """Run the input rules on ``text``: the text as the rules leave it (redactions made)
        and what matched. Blocking is the caller's to do."""
        findings: list[Finding] = []
        if patterns:
            for rule, regex in self.patterns:
                action = self.action_of(rule.name, rule.action)
                if action is None:
                    continue
                if action == "redact":
                    text, n = regex.subn(f"[REDACTED:{rule.name}]", text)
                else:
                    n = sum(1 for _ in regex.finditer(text)) if action == "flag" else int(regex.search(text) is not None)
                if n:
                    findings.append(Finding(rule.name, action, n))
            if self.injection is not None:
                action = self.action_of("injection", self.config.injection.action)
                if action is not None and self.injection.is_injection(text):
                    if action == "redact":
                        text = self.injection.redact(text)
                    findings.append(Finding("injection", action, 1))
        if pii and self.redactor:
            action = self.action_of("pii", self.config.pii.action)
            if action is not None:
                counts: Counter[str] = Counter()
                redacted = self.redactor.redact(text, counts)
                if counts:
                    if action == "redact":
                        text = redacted
                    findings.extend(Finding(f"pii.{kind}", action, n) for kind, n in sorted(counts.items()))
        return text, findings

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        """``text`` with its PII replaced (output, tool results and arguments, handoffs),
        unless an admin switched PII off."""
        if self.overrides.get("pii") == "off" or not self.redactor:
            return text
        return self.redactor.redact(text, counts)

    def describe(self) -> dict[str, Any]:
        """The rules in force, for the admin tool and ``GET /{agent}`` (no hash key)."""
        config = self.config
        return {
            "max_input_chars": config.max_input_chars,
            "input_roles": config.input_roles,
            "patterns": [
                {"name": rule.name, "pattern": rule.pattern, "action": self.overrides.get(rule.name, rule.action)}
                for rule, _ in self.patterns
            ],
            "injection": {
                "enabled": self.injection is not None,
                "action": self.overrides.get("injection", config.injection.action),
                "threshold": config.injection.threshold,
            },
            "pii": {
                "detect": list(config.pii.detect),
                "replacement": config.pii.replacement,
                "action": self.overrides.get("pii", config.pii.action),
                "applies_to": [k for k in ("input", "output", "tool_arguments", "tool_results", "handoffs")
                               if getattr(config.pii, k)],
            },
            "check_tool_results": config.check_tool_results,
            "policy": msgspec.to_builtins(config.policy),
            "overrides": dict(self.overrides),
        }


#: Names of the built-in rules (configured patterns may not take them).
BUILT_IN = frozenset({"injection", "pii", "max_input_chars", "deny_tools", "allow_agents", "allow_domains"})


def _host_matches(host: str, allowed: str) -> bool:
    allowed = allowed.lower()
    if allowed.startswith("*."):
        return host.endswith(allowed[1:]) or host == allowed[2:]
    return host == allowed


def _reason(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc)
    return text[2:-1] if text.startswith(("b'", 'b"')) else text


def map_text(message: Message, fn: Callable[[str], str]) -> Message:
    """``message`` with ``fn`` applied to its text (the string content, or each text part);
    the same object when nothing changed."""
    content = message.content
    if isinstance(content, str):
        new = fn(content)
        return message if new == content else msgspec.structs.replace(message, content=new)
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        changed = False
        for part in content:
            text = part.get("text") if part.get("type") == "text" else None
            if isinstance(text, str):
                new = fn(text)
                if new != text:
                    part = {**part, "text": new}
                    changed = True
            parts.append(part)
        return msgspec.structs.replace(message, content=parts) if changed else message
    return message


__all__ = ["BUILT_IN", "Finding", "Rules", "Setting", "map_text"]

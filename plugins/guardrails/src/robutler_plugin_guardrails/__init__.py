"""The ``guardrails`` skill: input, output, tool and handoff policy; PII redaction.

``skills: {guardrails: {patterns: [...], injection: {...}, pii: {...}, policy: {...}}}``;
every setting, default and decision is in ``docs/plugins/guardrails.md``.
"""

from __future__ import annotations

from robutler_specs import hookimpl

from .config import GuardrailsConfig, InjectionConfig, PatternRule, PIIConfig, PolicyConfig
from .detectors import KINDS, Redactor, StreamRedactor, iban_ok, luhn
from .injection import InjectionScorer
from .skill import GuardrailsSkill

__all__ = [
    "KINDS",
    "GuardrailsConfig",
    "GuardrailsSkill",
    "InjectionConfig",
    "InjectionScorer",
    "PIIConfig",
    "PatternRule",
    "PolicyConfig",
    "Redactor",
    "StreamRedactor",
    "iban_ok",
    "luhn",
]


@hookimpl
def robutler_skills() -> list[type[GuardrailsSkill]]:
    """The guardrails skill."""
    return [GuardrailsSkill]

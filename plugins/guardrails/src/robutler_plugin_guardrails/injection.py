"""Prompt-injection heuristics: weighted phrase signals, summed into a score.

Each signal is an RE2 pattern (case-insensitive unless noted) with a weight; a text whose
score reaches the threshold (1.0 by default: one strong signal, or two weaker ones) counts
as an injection attempt. They catch the common, copy-pasted attacks (ignore the previous
instructions, reveal the system prompt, role markers pasted into user text, "DAN" and
developer-mode jailbreaks) and miss paraphrases and other languages; they also fire on text
*about* injection. The rates measured on the labelled set shipped with the tests are in
``docs/plugins/guardrails.md``; that is why the default action is ``flag``.
"""

from __future__ import annotations

from dataclasses import dataclass

import re2

from .detectors import compile_re2


@dataclass(frozen=True, slots=True)
class Signal:
    """One heuristic: its name (shown by ``analyze_content_safety``), pattern and weight."""

    name: str
    regex: re2._Regexp
    weight: float


_EARLIER = r"(?:previous|prior|above|earlier|preceding|initial|original|system|developer|old)"
_ORDERS = r"(?:instructions?|prompts?|rules|directions|guidelines|directives|context|commands?|messages?)"


def _signals() -> list[Signal]:
    def s(name: str, pattern: str, weight: float, *, ignore_case: bool = True) -> Signal:
        return Signal(name, compile_re2(pattern, ignore_case=ignore_case), weight)

    return [
        s(
            "ignore_instructions",
            rf"\b(?:ignore|disregard|forget|override|bypass|drop)\s+(?:(?:all|any|every|the|your|my|these|those|of)\s+){{0,3}}"
            rf"{_EARLIER}\s+{_ORDERS}",
            1.0,
        ),
        s(
            "reveal_prompt",
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me|give\s+me|what\s+(?:is|are))\b[^.?!\n]{0,40}?"
            r"\b(?:system\s+prompt|hidden\s+(?:prompt|instructions)|(?:initial|original|secret)\s+(?:prompt|instructions)"
            r"|your\s+(?:system\s+)?(?:prompt|instructions))",
            1.0,
        ),
        s("role_markers", r"<\|im_start\|>|<\|system\|>|<\|endoftext\|>|\[/?INST\]|<</?SYS>>|(?m:^\s*#{0,3}\s*system\s*:)", 1.0),
        s("dan", r"\bDAN\b|\bSTAN\b", 0.6, ignore_case=False),
        s(
            "jailbreak_modes",
            r"\bdo\s+anything\s+now\b|\bdeveloper\s+mode\b|\bgod\s+mode\b|\bjailbr(?:ea|o)k(?:en|ed)?\s+mode\b"
            r"|\bjailbreak\s+prompt\b",
            1.0,
        ),
        s("jailbreak_word", r"\bjailbr(?:ea|o)k", 0.4),
        s(
            "new_identity",
            r"\b(?:you\s+are\s+now|from\s+now\s+on,?\s+you|pretend\s+(?:to\s+be|you\s+are|that\s+you)"
            r"|roleplay\s+as|act\s+as\s+(?:an?\s+)?(?:unrestricted|unfiltered|evil|uncensored))\b",
            0.5,
        ),
        s(
            "no_limits",
            r"\b(?:no|without|free\s+of|free\s+from|ignore\s+(?:all\s+)?(?:your\s+)?)\s*(?:any\s+)?"
            r"(?:restrictions|limitations|filters|content\s+polic(?:y|ies)|censorship|safety\s+guidelines|ethical\s+guidelines)\b"
            r"|\bunrestricted\b|\buncensored\b|\bunfiltered\b",
            0.5,
        ),
        s(
            "new_instructions",
            r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?instructions?\s*:"
            r"|\bbegin\s+(?:new\s+)?(?:system\s+)?instructions\b",
            0.7,
        ),
        s("prompt_boundary", r"\bend\s+of\s+(?:the\s+)?(?:system\s+)?prompt\b", 0.7),
        s(
            "exfiltration",
            r"!\[[^\]\n]{0,100}\]\(https?://[^)\s]{1,300}[?&][^)\s]{0,300}=|\b(?:send|post|forward|upload|exfiltrate|transmit)\b"
            r"[^.\n]{0,60}\b(?:to|at)\s+https?://",
            0.6,
        ),
        s("encoded_payload", r"\b(?:decode|execute|run|follow)\b[^.\n]{0,30}\b(?:base64|rot13|hex[- ]encoded)\b", 0.5),
    ]


class InjectionScorer:
    """Scores texts against the signals; immutable, shared by all requests of an agent."""

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.signals = _signals()

    def signals_in(self, text: str) -> list[Signal]:
        """The signals ``text`` shows."""
        return [sig for sig in self.signals if sig.regex.search(text) is not None]

    def score(self, text: str) -> tuple[float, list[str]]:
        """The score of ``text`` and the names of the signals that fired."""
        fired = self.signals_in(text)
        return round(sum(sig.weight for sig in fired), 3), [sig.name for sig in fired]

    def is_injection(self, text: str) -> bool:
        """Whether ``text`` reaches the threshold."""
        return self.score(text)[0] >= self.threshold

    def redact(self, text: str, replacement: str = "[REDACTED:injection]") -> str:
        """``text`` with the phrases of every signal replaced."""
        for sig in self.signals:
            text = sig.regex.sub(replacement, text)
        return text


__all__ = ["InjectionScorer", "Signal"]

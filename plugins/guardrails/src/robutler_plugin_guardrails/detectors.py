"""PII and secret detectors, and the one scan that both redacts a whole text and a stream.

Each :class:`Detector` is an RE2 pattern (linear time: no input makes it backtrack), the
largest number of bytes one of its matches can span (``limit``), the bytes a match can
consist of (``alphabet``), and a check in Python (Luhn, mod-97, octet ranges, entropy,
one byte of context on each side).

Why the last two: a stream is redacted exactly (the same text as redacting the whole
answer, however it is split into chunks) by holding back only what is not decided yet.
Whether a match starts at byte ``s`` is decided once the text holds every byte the match
and its right-hand context can reach: ``limit`` bytes after ``s``, or fewer when a byte
outside the detector's alphabet ends the run first. :func:`Redactor.settled` computes
that point; :func:`Redactor.step` emits everything before it. The whole-text redaction
is the same step with every byte settled, so the two agree by construction (and a
hypothesis test checks every split).

Texts are scanned as UTF-8 bytes: RE2 then matches without re-encoding the text on each
search, and every pattern here is ASCII, so a cut is never inside a character.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import re2

Kind = Literal["email", "phone", "card", "iban", "ssn", "secret", "ip"]
Style = Literal["label", "hash", "mask"]

#: Every kind of PII the plugin knows, in the order of the docs.
KINDS: tuple[Kind, ...] = ("email", "phone", "card", "iban", "ssn", "secret", "ip")

_DIGITS = frozenset(b"0123456789")
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_UPPER = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = frozenset(b"abcdefghijklmnopqrstuvwxyz")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a bad configured pattern is reported by us, not logged by RE2
    return options


def compile_re2(pattern: str | bytes, *, ignore_case: bool = False) -> re2._Regexp:
    """An RE2 pattern; raises ``re2.error`` when RE2 cannot run it (backreferences,
    look-around)."""
    options = _options()
    options.case_sensitive = not ignore_case
    return re2.compile(pattern, options)


def _at(text: bytes, i: int) -> int | None:
    return text[i] if 0 <= i < len(text) else None


def luhn(digits: str) -> bool:
    """Whether ``digits`` passes the Luhn check of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    """Whether ``value`` (spaces allowed) is an IBAN by its ISO 13616 mod-97 check."""
    compact = value.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def entropy(value: bytes) -> float:
    """Shannon entropy of ``value`` in bits per byte."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


@dataclass(frozen=True, slots=True)
class Detector:
    """One pattern of one kind of PII.

    :ivar kind: what it finds (the replacement's label).
    :ivar regex: the RE2 pattern, run on UTF-8 bytes.
    :ivar limit: the most bytes a match can span.
    :ivar alphabet: every byte a match can contain.
    :ivar check: ``check(text, start, end)``: whether the match is one (context: one byte
        each side; ``end == len(text)`` means the text ends there).
    :ivar lead: bytes a match may not follow (its ``check`` refuses those), so a scan
        that meets a long run of them skips the run instead of trying every offset.
    """

    kind: Kind
    regex: re2._Regexp
    limit: int
    alphabet: frozenset[int]
    check: Callable[[bytes, int, int], bool]
    lead: frozenset[int]
    #: What every match contains (a cheap test first: most text has no digit, no ``@``).
    needs: re.Pattern[bytes]
    #: The first byte at or after a position that is not in ``lead``.
    skip: re.Pattern[bytes] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        outside = b"[^" + b"".join(re.escape(bytes([b])) for b in sorted(self.lead)) + b"]"
        object.__setattr__(self, "skip", re.compile(outside))


def _not_before(chars: frozenset[int]) -> Callable[[bytes, int], bool]:
    return lambda text, s: _at(text, s - 1) not in chars


def _card(text: bytes, s: int, e: int) -> bool:
    if _at(text, s - 1) in _DIGITS or _at(text, e) in _DIGITS:
        return False
    digits = "".join(chr(b) for b in text[s:e] if b in _DIGITS)
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn(digits)


def _iban(text: bytes, s: int, e: int) -> bool:
    if _at(text, s - 1) in _ALNUM or _at(text, e) in _ALNUM:
        return False
    return iban_ok(text[s:e].decode("ascii"))


def _ssn(text: bytes, s: int, e: int) -> bool:
    if _at(text, s - 1) in _DIGITS | {ord("-")} or _at(text, e) in _DIGITS | {ord("-")}:
        return False
    digits = bytes(b for b in text[s:e] if b in _DIGITS).decode("ascii")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_EMAIL_LOCAL = _ALNUM | frozenset(b"._%+-")


def _email(text: bytes, s: int, e: int) -> bool:
    return _at(text, s - 1) not in _EMAIL_LOCAL | {ord("@")} and _at(text, e) not in _ALNUM | frozenset(b"_-@")


def _ipv4(text: bytes, s: int, e: int) -> bool:
    if _at(text, s - 1) in _DIGITS | {ord(".")} or _at(text, e) in _DIGITS:
        return False
    return all(int(part) <= 255 for part in text[s:e].split(b"."))


def _ipv6(text: bytes, s: int, e: int) -> bool:
    if _at(text, s - 1) in _ALNUM | frozenset(b":") or _at(text, e) in _ALNUM | frozenset(b":"):
        return False
    value = text[s:e]
    groups = [g for g in value.split(b":") if g]
    if len(groups) < 2 or not any(b in _DIGITS for b in value):
        return False
    try:
        ipaddress.IPv6Address(value.decode("ascii"))
    except ValueError:
        return False
    return True


def _phone(text: bytes, s: int, e: int) -> bool:
    if _at(text, s - 1) in _ALNUM | frozenset(b"+") or _at(text, e) in _DIGITS:
        return False
    value = text[s:e]
    digits = sum(1 for b in value if b in _DIGITS)
    if value.startswith(b"+"):
        return 8 <= digits <= 15
    first = value[1] if value.startswith(b"(") else value[0]
    return digits == 10 and first not in b"01"


_SECRET_CHARS = _ALNUM | frozenset(b"_-")


def _secret(text: bytes, s: int, e: int) -> bool:
    # No right-hand check: a key longer than the pattern allows is still redacted (its
    # first part), rather than let through whole.
    return _at(text, s - 1) not in _SECRET_CHARS


_TOKEN_CHARS = _ALNUM | frozenset(b"_+/=-")
TOKEN_LIMIT = 256


def _token(min_entropy: float) -> Callable[[bytes, int, int], bool]:
    def check(text: bytes, s: int, e: int) -> bool:
        if _at(text, s - 1) in _TOKEN_CHARS:
            return False
        if e - s < TOKEN_LIMIT and _at(text, e) in _TOKEN_CHARS:
            return False
        value = text[s:e]
        classes = sum(1 for group in (_UPPER, _LOWER, _DIGITS) if any(b in group for b in value))
        return classes == 3 and entropy(value) >= min_entropy

    return check


SECRET_PATTERN = (
    rb"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,200}"
    rb"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,200}"
    rb"|gh[pousr]_[A-Za-z0-9]{30,200}"
    rb"|github_pat_[A-Za-z0-9_]{22,255}"
    rb"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    rb"|AIza[0-9A-Za-z_-]{35}"
    rb"|xox[abposr]-[A-Za-z0-9-]{10,200}"
    rb"|glpat-[A-Za-z0-9_-]{20,200}"
    rb"|hf_[A-Za-z0-9]{30,200}"
    rb"|eyJ[A-Za-z0-9_-]{8,200}\.eyJ[A-Za-z0-9_-]{8,1000}\.[A-Za-z0-9_-]{8,400}"
)


def _needs(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(pattern)


def build_detectors(kinds: Sequence[Kind], *, token_min_length: int = 32, token_min_entropy: float = 4.2) -> list[Detector]:
    """The detectors of ``kinds``, in the order overlapping matches are resolved (an
    earlier detector wins a tie at the same start)."""
    c = compile_re2
    table: list[Detector] = [
        Detector("secret", c(SECRET_PATTERN), 1700, _ALNUM | frozenset(b"_.-"), _secret, _SECRET_CHARS, _needs(rb"[A-Za-z0-9_.-]{20}")),
        Detector(
            "card",
            c(rb"\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,7}|\d{4} \d{6} \d{4,5}|\d{13,19}"),
            22, _DIGITS | frozenset(b" -"), _card, _DIGITS, _needs(rb"[0-9]{4}"),
        ),
        Detector(
            "iban",
            c(rb"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"),
            43, _UPPER | _DIGITS | frozenset(b" "), _iban, _ALNUM, _needs(rb"[A-Z]{2}[0-9]{2}"),
        ),
        Detector("ssn", c(rb"\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}"), 11, _DIGITS | frozenset(b" -"), _ssn, _DIGITS | frozenset(b"-"), _needs(rb"[0-9]{3}[ -]")),
        Detector(
            "email",
            c(rb"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,6}\.[A-Za-z]{2,24}"),
            64 + 1 + 64 * 8 + 25, _EMAIL_LOCAL | frozenset(b"@"), _email, _EMAIL_LOCAL | frozenset(b"@"), _needs(rb"@"),
        ),
        Detector("ip", c(rb"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"), 15, _DIGITS | frozenset(b"."), _ipv4, _DIGITS | frozenset(b"."), _needs(rb"[0-9]\.")),
        Detector(
            "ip", c(rb"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"), 39, _HEX | frozenset(b":"), _ipv6, _ALNUM | frozenset(b":"), _needs(rb":[0-9A-Fa-f]{0,4}:"),
        ),
        Detector(
            "phone",
            c(rb"\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,6}|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}"),
            4 + 6 * 7, _DIGITS | frozenset(b" .()+-"), _phone, _ALNUM | frozenset(b"+"), _needs(rb"\+[0-9]|[0-9]{3}"),
        ),
        Detector(
            "secret",
            c(rb"[A-Za-z0-9_+/=-]{%d,%d}" % (token_min_length, TOKEN_LIMIT)),
            TOKEN_LIMIT, _TOKEN_CHARS, _token(token_min_entropy), _TOKEN_CHARS,
            _needs(rb"[A-Za-z0-9_+/=-]{%d}" % token_min_length),
        ),
    ]
    wanted = set(kinds)
    return [d for d in table if d.kind in wanted]


@dataclass(frozen=True, slots=True)
class Found:
    """One match chosen for redaction: bytes ``start:end`` of the scanned text."""

    start: int
    end: int
    kind: Kind


class Redactor:
    """Finds and replaces PII with one replacement style. Immutable once built, so one
    instance serves every request of an agent.

    :param kinds: which kinds to find.
    :param style: ``label`` (``[EMAIL]``), ``hash`` (``[EMAIL:3f2a9c1b0d]``, an HMAC of
        the value under ``hash_key``: the same value gives the same token, the value
        cannot be read back) or ``mask`` (``j***@example.com``, ``************1111``).
    :param hash_key: the HMAC key of ``hash``.
    """

    def __init__(
        self,
        kinds: Sequence[Kind] = KINDS,
        *,
        style: Style = "label",
        hash_key: bytes = b"",
        token_min_length: int = 32,
        token_min_entropy: float = 4.2,
    ) -> None:
        self.detectors = build_detectors(kinds, token_min_length=token_min_length, token_min_entropy=token_min_entropy)
        self.style = style
        self.hash_key = hash_key

    def __bool__(self) -> bool:
        return bool(self.detectors)

    # -- the scan --------------------------------------------------------------------------

    def settled(self, text: bytes, start: int) -> int:
        """The first byte of ``text`` (a stream's pending bytes) at which a match may still
        start or change with more text: every start before it is decided."""
        n = len(text)
        point = n
        for d in self.detectors:
            i, lowest, alphabet = n, max(start, n - d.limit), d.alphabet
            while i > lowest and text[i - 1] in alphabet:
                i -= 1
            # i is n - min(run, limit): a start before it either ends at a byte outside the
            # alphabet (present) or has all its `limit` bytes and one more in view.
            point = min(point, i)
        return point

    def find(self, text: bytes, start: int, stop: int) -> tuple[list[Found], int]:
        """The matches chosen among those starting in ``start:stop``, and the byte up to
        which everything is decided (``stop``, or the end of a match crossing it)."""
        candidates: list[tuple[int, int, int, Kind]] = []
        for rank, d in enumerate(self.detectors):
            pos = start
            if d.needs.search(text, start) is None:
                continue
            search, check, lead = d.regex.search, d.check, d.lead
            while True:
                m = search(text, pos)
                if m is None:
                    break
                s, e = m.span()
                if s >= stop:
                    break
                if s and text[s - 1] in lead:
                    # Inside a run the check refuses at every offset: go past the run.
                    outside = d.skip.search(text, s)
                    if outside is None:
                        break
                    pos = outside.start() + 1
                    continue
                if check(text, s, e):
                    candidates.append((s, rank, e, d.kind))
                pos = s + 1
        chosen: list[Found] = []
        end = start
        for s, _, e, kind in sorted(candidates):
            if s >= end:
                chosen.append(Found(s, e, kind))
                end = e
        return chosen, max(stop, end)

    def render(self, text: bytes, start: int, stop: int, found: list[Found], counts: Counter[str] | None) -> str:
        """``text[start:stop]`` with each of ``found`` replaced, as a string."""
        if not found:
            return text[start:stop].decode("utf-8")
        parts: list[str] = []
        at = start
        for f in found:
            parts.append(text[at:f.start].decode("utf-8"))
            parts.append(self.replacement(f.kind, text[f.start:f.end].decode("ascii")))
            if counts is not None:
                counts[f.kind] += 1
            at = f.end
        parts.append(text[at:stop].decode("utf-8"))
        return "".join(parts)

    def replacement(self, kind: Kind, value: str) -> str:
        """What ``value`` (a match of ``kind``) becomes. Never itself a match, so
        redacting twice gives what redacting once gives."""
        if self.style == "hash":
            digest = hmac.new(self.hash_key, value.encode(), hashlib.sha256).hexdigest()[:10]
            return f"[{kind.upper()}:{digest}]"
        if self.style == "mask":
            if kind == "email":
                local, _, domain = value.partition("@")
                return f"{local[:1]}***@{domain}"
            # An address keeps its last group only (a card, phone or key its last four).
            keep = len(value) - max(value.rfind("."), value.rfind(":")) - 1 if kind == "ip" else 4
            alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
            hidden = set(alnum[:-keep]) if len(alnum) > keep else set(alnum)
            return "".join("*" if i in hidden else ch for i, ch in enumerate(value))
        return f"[{kind.upper()}]"

    # -- whole texts -------------------------------------------------------------------------

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        """``text`` with every match replaced; ``counts`` (when given) adds one per match."""
        if not self.detectors or not text:
            return text
        raw = text.encode("utf-8")
        found, _ = self.find(raw, 0, len(raw))
        return self.render(raw, 0, len(raw), found, counts) if found else text

    def count(self, text: str) -> Counter[str]:
        """How many matches of each kind ``text`` holds (nothing is kept of them)."""
        counts: Counter[str] = Counter()
        self.redact(text, counts)
        return counts

    def stream(self) -> StreamRedactor:
        """A redactor for one stream of text."""
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts one stream chunk by chunk, exactly as :meth:`Redactor.redact` redacts the
    whole: ``"".join(feed(c) for c in chunks) + flush() == redact("".join(chunks))``.

    It holds back only the undecided tail (at most the longest match a detector allows,
    and usually just the last word), and keeps one byte of what it already let through as
    the left-hand context of the next match.
    """

    __slots__ = ("_pending", "_start", "counts", "redactor")

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._pending = b""
        self._start = 0  # bytes of context before the undecided text
        #: Matches redacted so far, by kind.
        self.counts: Counter[str] = Counter()

    @property
    def held(self) -> int:
        """Bytes held back right now."""
        return len(self._pending) - self._start

    def feed(self, text: str) -> str:
        """Take the next piece of the stream; return what can be let through now."""
        if text:
            self._pending += text.encode("utf-8")
        return self._step(final=False)

    def flush(self) -> str:
        """The stream ended: the rest, redacted. The redactor starts afresh after it."""
        out = self._step(final=True)
        self._pending, self._start = b"", 0
        return out

    def _step(self, *, final: bool) -> str:
        text, start = self._pending, self._start
        r = self.redactor
        if len(text) == start:
            return ""
        stop = len(text) if final else r.settled(text, start)
        if stop <= start:
            return ""
        found, upto = r.find(text, start, stop)
        out = r.render(text, start, upto, found, self.counts)
        self._pending, self._start = text[upto - 1:], 1
        return out


__all__ = [
    "KINDS",
    "Detector",
    "Found",
    "Kind",
    "Redactor",
    "StreamRedactor",
    "Style",
    "build_detectors",
    "compile_re2",
    "entropy",
    "iban_ok",
    "luhn",
]

"""Each detector against what it must find and what it must leave alone; the checks;
replacement styles; bounded time on hostile input."""

from __future__ import annotations

import time

import pytest

from robutler_plugin_guardrails import KINDS, Redactor, iban_ok, luhn

from .helpers import SAMPLES

LABEL = Redactor()

#: Texts each detector must redact (the sample is the whole match).
TRUE = {
    "email": ["john.doe@example.com", "a+tag@mail.co.uk", "x_y%z@sub.domain-1.io"],
    "phone": ["+1 415 555 2671", "+44 20 7946 0958", "(415) 555-2671", "415-555-2671", "+49 (30) 1234 5678"],
    "card": ["4111 1111 1111 1111", "4111111111111111", "5555-5555-5555-4444", "378282246310005", "3782 822463 10005"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR14 2004 1010 0505 0001 3M02 606"],
    "ssn": ["123-45-6789", "078 05 1121"],
    "secret": [
        "sk-proj-4fQ9xT2mLw8ZrB6yKc1VnH3s", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AKIAIOSFODNN7EXAMPLE",
        "xoxb-1234567890-abcdefghij", "glpat-abcdefghij1234567890",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ],
    "ip": ["192.168.10.24", "8.8.8.8", "2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a"],
}

#: Texts that look close but are not (wrong check digits, out of range, ordinary prose).
FALSE = {
    "email": ["john.doe@example", "@example.com", "user at example dot com"],
    "phone": ["call 555-1234", "order 12345", "+12", "the year 2024"],
    "card": ["4111 1111 1111 1112", "1234567812345678", "0000 0000 0000 0000", "12345"],
    "iban": ["DE89 3704 0044 0532 0130 01", "GB82WEST12345698765431", "AB12"],
    "ssn": ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"],
    "secret": [
        "task-management-is-important-for-teams", "sk-short", "0123456789abcdef0123456789abcdef01234567",
        "123e4567-e89b-12d3-a456-426614174000", "the_quick_brown_fox_jumps_over_lazy_dog",
    ],
    "ip": ["999.1.1.1", "version 3.11", "std::vector<int>", "12:30:45", "Foo::Bar"],
}


@pytest.mark.parametrize("kind,value", [(k, v) for k, vs in TRUE.items() for v in vs])
def test_each_detector_finds_its_kind(kind: str, value: str) -> None:
    text = f"before {value} after"
    assert LABEL.count(text) == {kind: 1}
    assert LABEL.redact(text) == f"before [{kind.upper()}] after"


@pytest.mark.parametrize("kind,value", [(k, v) for k, vs in FALSE.items() for v in vs])
def test_each_detector_leaves_lookalikes(kind: str, value: str) -> None:
    assert LABEL.redact(f"before {value} after") == f"before {value} after"


@pytest.mark.parametrize("number,ok", [
    ("4111111111111111", True), ("4111111111111112", False), ("5555555555554444", True),
    ("378282246310005", True), ("378282246310006", False), ("79927398713", True), ("79927398710", False),
])
def test_luhn(number: str, ok: bool) -> None:
    assert luhn(number) is ok


@pytest.mark.parametrize("value,ok", [
    ("DE89 3704 0044 0532 0130 00", True), ("GB82 WEST 1234 5698 7654 32", True), ("NL91ABNA0417164300", True),
    ("DE89 3704 0044 0532 0130 01", False), ("GB82 WEST 1234 5698 7654 33", False), ("NL91ABNA041716430", False),
    ("XX00", False),
])
def test_iban_mod_97(value: str, ok: bool) -> None:
    assert iban_ok(value) is ok


def test_only_the_configured_kinds_are_redacted() -> None:
    text = ", ".join(v for v, _ in SAMPLES.values())
    only = Redactor(["email", "card"]).redact(text)
    assert "[EMAIL]" in only and "[CARD]" in only and SAMPLES["phone"][0] in only and SAMPLES["iban"][0] in only


def test_styles_hide_the_value_and_redacting_twice_changes_nothing() -> None:
    text = "mail " + " , ".join(v for v, _ in SAMPLES.values()) + " ."
    for style in ("label", "hash", "mask"):
        r = Redactor(style=style, hash_key=b"k")  # type: ignore[arg-type]
        once = r.redact(text)
        assert r.redact(once) == once, style
        for value, _ in SAMPLES.values():
            assert value not in once, (style, value)
    hashed = Redactor(style="hash", hash_key=b"k")
    assert hashed.redact("a@b.io and a@b.io") == hashed.redact("a@b.io") + " and " + hashed.redact("a@b.io")
    assert hashed.redact("a@b.io") != Redactor(style="hash", hash_key=b"other").redact("a@b.io")
    masked = Redactor(style="mask")
    assert masked.redact("card 4111 1111 1111 1111") == "card **** **** **** 1111"
    assert masked.redact("mail john.doe@example.com") == "mail j***@example.com"


def test_text_around_is_kept_exactly() -> None:
    text = "héllo wörld ✓ john@example.com — 😀 4111111111111111\n\ttab"
    assert LABEL.redact(text) == "héllo wörld ✓ [EMAIL] — 😀 [CARD]\n\ttab"
    assert set(KINDS) == set(TRUE)


@pytest.mark.parametrize("hostile", [
    "a" * 200_000 + "@",                       # email: a huge local part that never ends
    "1" * 200_000,                             # digits: cards, phones, SSNs at every offset
    ("1 " * 100_000),                          # digit groups
    "a." * 100_000 + "@x",                     # dotted runs
    "A1b2" * 50_000,                           # one huge high-entropy-looking run
    ":" * 100_000 + "1",                       # IPv6 colons
])
def test_hostile_inputs_finish_in_bounded_time(hostile: str) -> None:
    started = time.perf_counter()
    LABEL.redact(hostile)
    stream = LABEL.stream()
    for i in range(0, len(hostile), 4096):
        stream.feed(hostile[i:i + 4096])
    stream.flush()
    assert time.perf_counter() - started < 2  # linear: about 0.1 s here

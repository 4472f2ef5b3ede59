"""``python -m bench guardrails`` stays runnable (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # the repository root: `bench`

from bench import targets_guardrails  # noqa: E402


def test_a_quick_run_prints_both_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert targets_guardrails.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "dense PII" in out and "no guardrails" in out and "first text chunk, ms" in out


def test_the_chunks_are_words_with_their_space() -> None:
    assert targets_guardrails.words("a b  c") == ["a", " b", " ", " c"]
    assert "".join(targets_guardrails.words(targets_guardrails.DENSE)) == targets_guardrails.DENSE

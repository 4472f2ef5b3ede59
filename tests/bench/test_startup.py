"""The start-up bench (``python -m bench startup``): a real server timed from its exec.

No timing is asserted beyond order: the point is that the figures are the server's (it
answered, in that order, with its memory read while it ran)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `bench`

import pytest

from bench import startup


def test_the_quick_start_server_is_timed_to_ready_then_to_its_first_answer() -> None:
    lines: list[str] = []
    results = startup.run(["quickstart"], rounds=1, progress=lines.append)
    [figures] = results["quickstart"]
    assert 0 < figures["ready_ms"] <= figures["first_answer_ms"] < startup.TIMEOUT * 1000
    assert figures["rss_mib"] > 5  # read while the server ran, not after it stopped
    assert len(lines) == 1 and "quickstart" in lines[0]
    text = startup.table(results)
    assert text.splitlines()[0].split()[:2] == ["target", "runs"]
    assert text.splitlines()[2].split()[:2] == ["quickstart", "1"]


def test_an_unknown_target_is_refused_with_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert startup.main(["--targets", "nginx"]) == 2
    assert "known: quickstart, robutler, passthrough" in capsys.readouterr().out

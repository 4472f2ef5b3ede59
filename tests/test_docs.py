"""The docs stay true: the hook reference matches the specs; the README's promises hold."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_hook_reference_is_generated_from_the_specs() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "hook_docs.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_quick_start_has_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", quick, re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert commands == ["scripts/serve", "scripts/test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()

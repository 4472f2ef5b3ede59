"""The docs stay true: the hook reference matches the specs; the README's promises hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


# -- docs/writing-plugins.md: the example plugin works as written -------------------------------------------

#: A code block that is a file of the example: its first line is ``# file: <path>``.
FILE_BLOCK = re.compile(r"```(?:toml|python)\n# file: (\S+)\n(.*?)```", re.S)


def write_doc_files(doc: Path, root: Path) -> list[Path]:
    """Write every ``# file: <path>`` block of ``doc`` under ``root``; returns the paths."""
    written = []
    for name, body in FILE_BLOCK.findall(doc.read_text()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        written.append(path)
    return written


def test_writing_plugins_example_passes_its_own_test(tmp_path: Path) -> None:
    root = tmp_path / "robutler-plugin-weather"
    files = write_doc_files(ROOT / "docs" / "writing-plugins.md", root)
    assert sorted(str(p.relative_to(root)) for p in files) == [
        "pyproject.toml", "src/robutler_plugin_weather/__init__.py", "tests/test_weather.py",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    # The package is not installed here, so its entry point test cannot pass; tests/test_install.py
    # installs the example in a new virtualenv and runs both of its tests there.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root), "-c", str(root / "pyproject.toml"),
         "--deselect", "tests/test_weather.py::test_the_entry_point_is_discoverable", "tests"],
        capture_output=True, text=True, env=env, cwd=root, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 deselected" in result.stdout


# -- docs/configuration.md: every YAML example passes `robutler-kernel check` ----------------------------------

#: Values for the variables the examples read (fake: nothing is called).
EXAMPLE_ENV = {
    "OPENAI_API_KEY": "sk-example",
    "ANTHROPIC_API_KEY": "sk-ant-example",
    "LEDGER_DSN": "postgresql://robutler@127.0.0.1:5432/ledger",
}


def _yaml_blocks(doc: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)


@pytest.mark.parametrize("doc", ["docs/configuration.md", "README.md"])
def test_configuration_examples_pass_check(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robutler_kernel.check import check_file

    monkeypatch.setattr(sys, "path", list(sys.path))  # check adds the examples' folder
    for name in [m for m in sys.modules if m.split(".")[0] == "mypackage"]:
        monkeypatch.delitem(sys.modules, name)
    blocks = _yaml_blocks(ROOT / doc)
    assert len(blocks) >= 2
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "__init__.py").write_text("")
    (tmp_path / "mypackage" / "tools.py").write_text(
        'def get_weather(city: str) -> str:\n    """The weather in a city.\n\n    Args:\n        city: the city\n    """\n    return city\n'
    )
    env = {**os.environ, **EXAMPLE_ENV}
    failures = []
    # A block whose first line is ``# file: <path>`` is a file of an example (a config, an
    # agent file of its agents_dir): written out first, and checked when it is the config.
    named = {m.group(1): block for block in blocks if (m := re.match(r"# file: (\S+)\n", block))}
    for name, block in named.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(block)
    for i, block in enumerate(blocks):
        name = next((n for n, b in named.items() if b is block), None)
        if name is not None and not name.endswith("robutler.yaml"):
            continue
        path = tmp_path / (name or f"example{i}.yaml")
        path.write_text(block)
        report = check_file(path, env=env)
        if not report.ok:
            failures.append(f"example {i + 1}:\n{block}\n" + "\n".join(report.errors))
    assert not failures, "\n\n".join(failures)
    for name in [m for m in sys.modules if m.split(".")[0] == "mypackage"]:
        del sys.modules[name]

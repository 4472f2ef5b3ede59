"""The plugin author's path on a clean machine: wheels, a new virtualenv, a new plugin, its test.

Builds every package into a wheelhouse (``scripts/wheelhouse``), creates a virtualenv that
holds nothing of this repository, installs ``robutler-kernel[testing]`` and one plugin from
the wheelhouse (their other dependencies come from the package index), then checks what a
new user does first: ``plugins``, ``--help``, ``new-plugin`` and the new package's own test,
and the example of ``docs/writing-plugins.md`` as written. About a minute with a warm pip
cache; it runs in the normal suite (marker ``install``: ``-m "not install"`` leaves it out
while iterating).
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.test_docs import write_doc_files

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.install


def run(
    *args: str | Path, cwd: Path | None = None, python: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command outside this test run's environment (no PYTHONPATH, no active venv);
    ``python`` is the interpreter ``scripts/wheelhouse`` builds with."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if python is not None:
        env["PYTHON"] = str(python)
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def clean_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the new virtualenv's bin folder, the wheelhouse) with kernel[testing] and payments installed."""
    tmp = tmp_path_factory.mktemp("install")
    venv.EnvBuilder(with_pip=True).create(tmp / "venv")
    bin_dir = tmp / "venv" / "bin"
    python = bin_dir / "python"
    # setuptools in the new venv lets the wheels build without an isolated build env each.
    run(python, "-m", "pip", "install", "-q", "setuptools>=77")
    wheelhouse = tmp / "wheelhouse"
    run(ROOT / "scripts" / "wheelhouse", wheelhouse, "--no-build-isolation", python=python)
    # The README's command, with the wheelhouse standing in for the package index.
    run(python, "-m", "pip", "install", "-q", "--find-links", wheelhouse, "robutler-kernel[testing]", "robutler-plugin-payments")
    return bin_dir, wheelhouse


def test_the_wheelhouse_holds_every_package(clean_env: tuple[Path, Path]) -> None:
    _, wheelhouse = clean_env
    names = sorted(p.name.split("-")[0] for p in wheelhouse.glob("*.whl"))
    plugins = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
    assert names == sorted(["robutler_kernel", "robutler_specs", *(f"robutler_plugin_{p}" for p in plugins)])


def test_a_plugin_brings_the_plugins_it_requires_and_the_cli_works_without_scripted(clean_env: tuple[Path, Path]) -> None:
    bin_dir, _ = clean_env
    listing = run(bin_dir / "robutler-kernel", "plugins").stdout
    plugins = {line.split()[0] for line in listing.splitlines()[1:]}
    assert plugins == {"auth", "payments"}  # auth came with payments; scripted is not installed
    assert "payments  Manage the payments ledger" in run(bin_dir / "robutler-kernel", "--help").stdout


def test_a_new_plugin_passes_its_own_test_in_the_clean_env(clean_env: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, wheelhouse = clean_env
    run(bin_dir / "robutler-kernel", "new-plugin", "weather-now", "--dir", tmp_path)
    root = tmp_path / "weather-now"
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--no-build-isolation", "--find-links", wheelhouse, "-e", f"{root}[test]")
    result = run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
    assert "1 passed" in result.stdout


def test_the_writing_plugins_example_passes_its_own_tests_as_written(clean_env: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, wheelhouse = clean_env
    root = tmp_path / "robutler-plugin-weather"
    write_doc_files(ROOT / "docs" / "writing-plugins.md", root)
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--no-build-isolation", "--find-links", wheelhouse, "-e", f"{root}[test]")
    result = run(bin_dir / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
    assert "2 passed" in result.stdout

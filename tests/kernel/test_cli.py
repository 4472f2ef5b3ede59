"""The ``robutler-kernel`` command: plugins, check, chat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from robutler_kernel.cli import main

CLI = [sys.executable, "-m", "robutler_kernel.cli"]


def test_plugins_lists_installed_plugins_with_versions_and_skills(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    scripted = next(r for r in rows if r["plugin"] == "scripted")
    assert scripted["skill"] == "scripted" and scripted["version"] == "0.1.0"
    assert scripted["distribution"] == "robutler-plugin-scripted"
    assert main(["plugins"]) == 0
    assert "scripted" in capsys.readouterr().out


def test_check_accepts_a_good_config(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "robutler.yaml"
    config.write_text("agents:\n  demo:\n    model: scripted/echo\n    tools: ['tests.kernel.sample_tools:get_weather']\n")
    assert main(["check", str(config)]) == 0
    out = capsys.readouterr().out
    assert "ok  demo: model scripted/echo; skills: scripted; tools: 1" in out


def test_check_fails_with_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("agents:\n  demo:\n    model: scripted/echo\n    max_tool_rounds: lots\n")
    result = subprocess.run([*CLI, "check", str(config)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "bad.yaml:4" in result.stderr and "max_tool_rounds" in result.stderr


def test_check_names_a_missing_plugin(tmp_path: Path) -> None:
    config = tmp_path / "robutler.yaml"
    config.write_text("agents:\n  demo:\n    model: scripted/echo\n    skills: {teleport_nowhere: {}}\n")
    result = subprocess.run([*CLI, "check", str(config)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install robutler-plugin-teleport-nowhere" in result.stderr


def test_check_names_a_missing_tool(tmp_path: Path) -> None:
    config = tmp_path / "robutler.yaml"
    config.write_text("agents:\n  demo:\n    model: scripted/echo\n    tools: ['nowhere.module:fn']\n")
    result = subprocess.run([*CLI, "check", str(config)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "nowhere.module:fn" in result.stderr


def test_chat_streams_one_message_in_process(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["chat", "assistant", "--message", "hello from the terminal"]) == 0
    assert "assistant> You said: hello from the terminal" in capsys.readouterr().out


def test_chat_picks_a_model_and_refuses_one_the_agent_does_not_allow(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "robutler.yaml"
    config.write_text("agents:\n  duo:\n    model: scripted/echo\n    allowed_models: [scripted/other]\n")
    assert main(["chat", "duo", "-c", str(config), "--model", "scripted/other", "--message", "hi"]) == 0
    assert "duo> You said: hi" in capsys.readouterr().out
    assert main(["chat", "duo", "-c", str(config), "--model", "openai/gpt-4o", "--message", "hi"]) == 1
    error = capsys.readouterr().err
    assert "error (400)" in error and "scripted/echo, scripted/other" in error


def test_chat_unknown_agent_fails(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["chat", "nobody", "--message", "x"]) == 1
    assert "no agent named 'nobody'" in capsys.readouterr().err


def test_new_plugin_scaffold_passes_its_own_test(tmp_path: Path) -> None:
    assert main(["new-plugin", "weather-now", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "weather-now"
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."robutler.plugins"]\nweather_now = "robutler_plugin_weather_now"' in pyproject
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(root / "tests")],
        capture_output=True, text=True, env=env, cwd=root, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert main(["new-plugin", "weather-now", "--dir", str(tmp_path)]) == 1  # never overwrites

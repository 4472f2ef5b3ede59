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


# -- without the scripted plugin: only the no-config demo agent needs it -------------------------------------

NO_SCRIPTED = {**os.environ, "ROBUTLER_DISABLE_PLUGINS": "scripted"}


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """A user's mistake is one ``error: ...`` line on stderr and exit code 1, no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_plugins_lists_what_is_installed_without_the_scripted_plugin() -> None:
    result = _run("plugins", "--json", env=NO_SCRIPTED)
    assert result.returncode == 0, result.stderr
    plugins = {row["plugin"] for row in json.loads(result.stdout)}
    assert "scripted" not in plugins and {"openai", "payments", "auth"} <= plugins


def test_serve_with_a_config_runs_without_the_scripted_plugin(tmp_path: Path) -> None:
    from robutler_kernel.testing import ServeProcess

    config = tmp_path / "robutler.yaml"
    config.write_text(
        "server: {metrics_port: null}\n"
        "agents:\n  bot:\n    model: openai/gpt-4o-mini\n    skills: {openai: {api_key: sk-test}}\n"
    )
    with ServeProcess(config, env={"ROBUTLER_DISABLE_PLUGINS": "scripted"}) as server:
        assert server.url.startswith("http://127.0.0.1:")
    assert any("/bot/chat/completions  (openai/gpt-4o-mini)" in line for line in server.output)


def test_serve_without_any_config_and_without_scripted_says_what_to_do(tmp_path: Path) -> None:
    line = _one_error_line(_run("serve", "--port", "0", env=NO_SCRIPTED, cwd=tmp_path))
    assert "no config given (--config FILE, or ./robutler.yaml)" in line
    assert "pip install robutler-plugin-scripted" in line


# -- common mistakes: one line, exit 1 ------------------------------------------------------------------------


def test_serve_on_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    config = tmp_path / "robutler.yaml"
    config.write_text("server: {metrics_port: null}\nagents: {}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_error_line(_run("serve", "-c", str(config), "--port", str(port)))
    assert line == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is already in use (another server?); "
        "choose another with --port or server.port"
    )


def test_serve_on_an_unknown_host_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "robutler.yaml"
    config.write_text("server: {metrics_port: null}\nagents: {}\n")
    line = _one_error_line(_run("serve", f"--config={config}", "--host", "nohost.invalid", "--port", "0"))
    assert "cannot listen on nohost.invalid:0: unknown host 'nohost.invalid'" in line


def test_chat_with_a_server_that_is_down_is_one_clear_line() -> None:
    from robutler_kernel.testing import closed_port

    port = closed_port()
    line = _one_error_line(_run("chat", "--url", f"http://127.0.0.1:{port}", "-m", "hi"))
    assert line == (
        f"error: cannot connect to http://127.0.0.1:{port}: nothing is listening there (is `robutler-kernel serve` running?)"
    )


def test_chat_url_without_scheme_or_with_an_unknown_host_is_one_clear_line() -> None:
    line = _one_error_line(_run("chat", "--url", "localhost:8000", "-m", "hi"))
    assert line == "error: --url 'localhost:8000' is not an http:// or https:// URL; write it in full, e.g. http://localhost:8000"
    line = _one_error_line(_run("chat", "--url", "http://nohost.invalid:8000", "-m", "hi"))
    assert line == "error: cannot reach http://nohost.invalid:8000: unknown host 'nohost.invalid' (check --url)"


# -- plugin commands: in the help, with -c / --config= --------------------------------------------------------


def test_help_lists_the_commands_plugins_add() -> None:
    result = _run("--help")
    assert result.returncode == 0
    assert "payments  Manage the payments ledger" in result.stdout and "(from plugin payments)" in result.stdout


def test_every_command_that_takes_a_config_honours_c_and_config_equals(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ledger = tmp_path / "ledger.db"
    config = tmp_path / "robutler.yaml"
    config.write_text(f"plugins:\n  payments: {{path: '{ledger}'}}\nagents:\n  duo:\n    model: scripted/echo\n")
    assert main(["payments", "account", "create", "alice", "--balance", "5", "-c", str(config)]) == 0
    assert ledger.exists()  # the ledger is where the config says, not the default path
    assert main(["payments", f"--config={config}", "balance", "alice"]) == 0
    assert main(["payments", f"-c{config}", "balance", "alice"]) == 0
    assert capsys.readouterr().out.count("5") >= 2
    for flags in (["-c", str(config)], [f"--config={config}"], [str(config)]):
        assert main(["check", *flags]) == 0
        assert "ok  duo: model scripted/echo" in capsys.readouterr().out
    assert main(["chat", "duo", f"--config={config}", "-m", "hi"]) == 0
    assert "duo> You said: hi" in capsys.readouterr().out


# -- check: every problem at once, at its line, with the nearest name ------------------------------------------


def test_check_reports_every_problem_at_its_line_with_the_nearest_name(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "server:\n"
        "  port: ${CHECK_UNSET_PORT}\n"
        "agents:\n"
        "  bot:\n"
        "    model: opneai/gpt-4o\n"
        "    skills:\n"
        "      auht: {}\n"
        "      short_term_memory: {max_mesages: 3}\n"
        "      teleport_nowhere: {}\n"
        "    tools: ['nowhere_mod:fn']\n"
        "  fine:\n"
        "    model: scripted/echo\n"
        "plugins:\n"
        "  paymnets: {path: x.db}\n"
        "  payments: {backend: mysql}\n"
    )
    result = _run("check", str(config))
    assert result.returncode == 1
    f = str(config)
    assert result.stderr.splitlines() == [
        f"{f}:2: server.port: environment variable `CHECK_UNSET_PORT` is not set; set it or give a default: `${{CHECK_UNSET_PORT:-default}}`",
        f"{f}:5: agents.bot.model: no installed plugin serves models `opneai/...` (did you mean `openai/gpt-4o`?)",
        f"{f}:7: agents.bot.skills.auht: no installed plugin provides skill `auht` (did you mean `auth`?)",
        f"{f}:8: agents.bot.skills.short_term_memory.max_mesages: unknown key (did you mean `max_messages`?)",
        f"{f}:9: agents.bot.skills.teleport_nowhere: no installed plugin provides skill `teleport_nowhere`; "
        "install it with: pip install robutler-plugin-teleport-nowhere",
        f"{f}:10: agents.bot.tools[0]: cannot import `nowhere_mod:fn`: ModuleNotFoundError: "
        f"No module named 'nowhere_mod' (looked in sys.path and in {tmp_path})",
        f"{f}:14: plugins.paymnets: no installed plugin is named `paymnets` (did you mean `payments`?)",
        f"{f}:15: plugins.payments.backend: Invalid enum value 'mysql'",
        f"{f}: 8 problems",
    ]


def test_check_reports_a_skill_that_refuses_its_settings_at_their_line(tmp_path: Path) -> None:
    config = tmp_path / "robutler.yaml"
    config.write_text(
        "agents:\n  bot:\n    model: scripted/echo\n    skills:\n      auth:\n        jwt: {algorithms: [HS256]}\n"
    )
    result = _run("check", "-c", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(f"{config}:6: agents.bot.skills.auth.jwt")

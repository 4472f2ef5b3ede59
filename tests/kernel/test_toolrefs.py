"""Plain-Python tools named in the config (``tools: ["module:function"]``): where they are found."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.config import load_config
from robutler_kernel.testing import kernel_client
from robutler_kernel.toolrefs import load_tool
from robutler_specs import ConfigError


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))


def _project(tmp_path: Path, module: str) -> Path:
    """A folder holding robutler.yaml and the tool module it names (not on sys.path)."""
    (tmp_path / f"{module}.py").write_text(
        "from helpers_" + module + " import sunny\n\n"
        "def forecast(city: str) -> str:\n"
        '    """The forecast for a city.\n\n    Args:\n        city: the city name\n    """\n'
        "    return sunny(city)\n"
    )
    (tmp_path / f"helpers_{module}.py").write_text("def sunny(city):\n    return f'Sunny in {city}'\n")
    config = tmp_path / "robutler.yaml"
    config.write_text(f"agents:\n  bot:\n    model: scripted/echo\n    tools: ['{module}:forecast']\n")
    return config


async def test_a_tool_module_next_to_the_config_file_is_found(tmp_path: Path) -> None:
    config = _project(tmp_path, "mytools_here")
    kernel = Kernel(load_config(config), plugins=[scripted], discover=False)
    async with kernel_client(kernel) as client:
        response = await client.post(
            "/bot/chat/completions", json={"messages": [{"role": "user", "content": "call forecast city=Oslo"}]}
        )
    assert response.json()["choices"][0]["message"]["content"] == "Tool forecast returned: Sunny in Oslo"


def test_a_config_built_in_code_finds_tools_on_sys_path_only(tmp_path: Path) -> None:
    _project(tmp_path, "mytools_elsewhere")
    with pytest.raises(ConfigError, match=r"agents\.bot\.tools: cannot import 'mytools_elsewhere:forecast'"):
        load_tool("mytools_elsewhere:forecast", agent="bot")
    assert load_tool("tests.kernel.sample_tools:get_weather", agent="bot", base_dir=tmp_path).name == "get_weather"


def test_a_missing_module_names_both_places_looked_in(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_tool("nowhere_at_all:fn", agent="bot", base_dir=tmp_path)
    assert str(info.value) == (
        f"agents.bot.tools: cannot import 'nowhere_at_all:fn': No module named 'nowhere_at_all' (looked in sys.path and in {tmp_path})"
    )
    assert str(tmp_path) not in sys.path  # a folder that held nothing is not left on sys.path


def test_a_module_that_fails_to_import_is_named_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "broken_tools.py").write_text("def forecast(:\n")
    with pytest.raises(ConfigError, match=r"cannot import 'broken_tools:forecast': SyntaxError"):
        load_tool("broken_tools:forecast", agent="bot", base_dir=tmp_path)

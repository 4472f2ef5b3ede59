"""``robutler-kernel new-plugin NAME``: a new plugin package that installs, loads and tests."""

from __future__ import annotations

import re
from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "robutler-plugin-{dash}"
version = "0.1.0"
description = "Robutler plugin: {name}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["robutler-specs>=0.1.0"]

[project.optional-dependencies]
# the kernel with its test kit (pytest, pytest-asyncio, httpx) and the offline model the test uses
test = ["robutler-kernel[testing]>=0.1.0", "robutler-plugin-scripted>=0.1.0"]

[project.entry-points."robutler.plugins"]
{snake} = "robutler_plugin_{snake}"

# The skills it provides: the kernel imports the plugin only when an agent uses one.
[project.entry-points."robutler.skills"]
{snake} = "robutler_plugin_{snake}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
"""

MODULE = '''\
"""Robutler plugin ``{snake}``: one skill with one tool. Edit me."""

from __future__ import annotations

import msgspec
from robutler_specs import RequestContext, Skill, hookimpl, tool


class {cls}Config(msgspec.Struct, forbid_unknown_fields=True):
    """Settings under ``skills: {{{snake}: {{...}}}}``."""

    greeting: str = "Hello"


class {cls}(Skill):
    """What the skill does, in one line."""

    name = "{snake}"
    Config = {cls}Config
    description = "Greets people"

    @tool
    def greet(self, who: str, ctx: RequestContext) -> str:
        """Greet someone by name.

        Args:
            who: the name of the person to greet
        """
        return f"{{self.config.greeting}}, {{who}}!"

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        """Runs first for every request: authenticate, load state, or refuse."""


@hookimpl
def robutler_skills() -> list[type[Skill]]:
    """The skills this plugin provides."""
    return [{cls}]
'''

TEST = '''\
"""Tests of the {snake} plugin, through the kernel's test kit."""

from __future__ import annotations

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel

import robutler_plugin_{snake} as plugin


async def test_the_model_can_call_greet() -> None:
    kernel = make_kernel(
        {{"bot": {{"model": "scripted/echo", "skills": {{"{snake}": {{"greeting": "Hi"}}}}}}}},
        plugins=[scripted, plugin],
    )
    async with kernel_client(kernel) as client:
        response = await client.post(
            "/bot/chat/completions",
            json={{"messages": [{{"role": "user", "content": "call greet who=Ada"}}]}},
        )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Tool greet returned: Hi, Ada!"
'''

README = """\
# robutler-plugin-{dash}

A Robutler plugin. Install it next to `robutler-kernel` and configure it per agent:

```yaml
agents:
  assistant:
    model: openai/gpt-4o-mini
    skills:
      {snake}: {{greeting: Hello}}
```

Develop: `pip install -e '.[test]' && pytest` (the kernel's test kit comes with the `test`
extra; before the packages are on an index, add `--find-links WHEELHOUSE`, built by the
kernel repository's `scripts/wheelhouse`).
"""


def create_plugin(name: str, parent: Path) -> Path:
    """Write the package of plugin ``name`` under ``parent``; returns its folder.

    :raises ValueError: the name is not a valid identifier-like name, or the folder exists.
    """
    snake = name.strip().lower().replace("-", "_")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", snake):
        raise ValueError(f"plugin name {name!r}: use letters, digits and '_' or '-', starting with a letter")
    dash = snake.replace("_", "-")
    cls = "".join(part.capitalize() for part in snake.split("_")) + "Skill"
    root = parent / dash
    if root.exists():
        raise ValueError(f"{root} already exists")
    values = {"name": name, "snake": snake, "dash": dash, "cls": cls}
    files = {
        root / "pyproject.toml": PYPROJECT,
        root / "README.md": README,
        root / "src" / f"robutler_plugin_{snake}" / "__init__.py": MODULE,
        root / "tests" / f"test_{snake}.py": TEST,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
    return root

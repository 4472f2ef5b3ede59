"""The documented config example is valid and shows the real defaults."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
from ruamel.yaml import YAML

from robutler_plugin_longterm import LongTermConfig

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "longterm.md"


def test_the_documented_defaults_are_the_defaults() -> None:
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None
    documented = YAML(typ="safe").load(block.group(1))["agents"]["assistant"]["skills"]["long_term_memory"]
    assert msgspec.convert(documented, LongTermConfig) == LongTermConfig()
    for key in msgspec.structs.fields(LongTermConfig):
        assert f"`{key.name}`" in DOC.read_text() or f"`{key.name}." in DOC.read_text(), key.name

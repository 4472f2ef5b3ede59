"""The documented config examples are valid and show the real defaults; every key is documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
from ruamel.yaml import YAML

from robutler_plugin_discovery import AnnounceConfig, DiscoveryConfig, DiscoverySettings, RegistryConfig

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "discovery.md"


def blocks() -> list[Any]:
    return [YAML(typ="safe").load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def test_the_documented_defaults_are_the_defaults() -> None:
    first, registry, announce = blocks()
    assert msgspec.convert(first["plugins"]["discovery"], DiscoverySettings) == DiscoverySettings()
    assert msgspec.convert(first["agents"]["assistant"]["skills"]["discovery"], DiscoveryConfig) == DiscoveryConfig()
    assert msgspec.convert(registry["plugins"]["discovery"]["registry"], RegistryConfig) == RegistryConfig()
    documented = {**announce["plugins"]["discovery"]["announce"], "api_key": None}
    assert msgspec.convert(documented, AnnounceConfig) == AnnounceConfig()


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    for struct, prefix in ((DiscoverySettings, ""), (RegistryConfig, "registry."), (AnnounceConfig, "announce.")):
        for field in msgspec.structs.fields(struct):
            assert f"`{prefix}{field.name}`" in text, f"{prefix}{field.name}"
    for field in msgspec.structs.fields(DiscoveryConfig):
        assert f"{field.name}:" in text, field.name


def test_settings_refuse_what_cannot_work() -> None:
    bad: list[dict[str, Any]] = [
        {"peers": ["peer:8000"]},
        {"announce": {"api_key": "k"}},  # no registry
        {"registry_url": "http://r", "announce": {}},  # no public_url
        {"registry_url": "http://r", "public_url": "http://me", "announce": {"ttl": 10, "interval": 10}},
        {"default_top_k": 0},
        {"ranking": "vector"},
    ]
    for settings in bad:
        try:
            msgspec.convert(settings, DiscoverySettings)
        except (msgspec.ValidationError, ValueError):
            continue
        raise AssertionError(f"accepted {settings}")

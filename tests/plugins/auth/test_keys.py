"""API keys: loading, hashing, constant-time comparison, and that no plaintext is kept."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec
import pytest

from robutler_plugin_auth import ApiKeyConfig, KeyStore, hash_key
from robutler_specs import ConfigError

from .helpers import (
    ALICE_KEY,
    BOB_KEY,
    ROOT_KEY,
    agent,
    auth_skill,
    build,
    keys_config,
    openai_client,
    strings_in,
)


def store(*configs: dict[str, Any], env: dict[str, str] | None = None) -> KeyStore:
    return KeyStore.from_config(
        [msgspec.convert(c, ApiKeyConfig) for c in configs], where="agents.bot.skills.auth.api_keys", env=env or {}
    )


def test_keys_from_config_env_and_hash_are_equivalent() -> None:
    keys = store(
        {"key": ALICE_KEY, "user_id": "alice"},
        {"key_env": "BOB_API_KEY", "user_id": "bob", "scopes": ["owner"]},
        {"key_hash": hash_key(ROOT_KEY).upper().replace("SHA256", "sha256"), "user_id": "root", "scopes": ["admin"]},
        env={"BOB_API_KEY": BOB_KEY},
    )
    assert keys.lookup(ALICE_KEY).user_id == "alice"  # type: ignore[union-attr]
    bob = keys.lookup(BOB_KEY)
    assert bob is not None and bob.user_id == "bob" and bob.scopes == ("all", "owner")
    assert keys.lookup(ROOT_KEY).scopes == ("all", "admin")  # type: ignore[union-attr]
    assert keys.lookup("not-a-key-at-all-0123456789") is None
    assert keys.lookup(ALICE_KEY[:-1]) is None and keys.lookup(ALICE_KEY + "x") is None


def test_hash_key_is_the_sha256_form() -> None:
    assert hash_key("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"user_id": "a"}, "api_keys[0]: give exactly one of key, key_env or key_hash"),
        ({"user_id": "a", "key": ALICE_KEY, "key_hash": hash_key(ALICE_KEY)}, "(got key and key_hash)"),
        ({"user_id": "a", "key": "short-key"}, "api_keys[0].key: the key is 9 characters; at least 20"),
        ({"user_id": "a", "key": "has a space in it 0123456789"}, "visible ASCII without spaces"),
        ({"user_id": "a", "key_hash": "md5:abc"}, "api_keys[0].key_hash: expected 'sha256:' and 64 hex digits"),
        ({"user_id": "a", "key_env": "NOT_SET_ANYWHERE"}, "environment variable 'NOT_SET_ANYWHERE' is not set"),
    ],
)
def test_bad_key_config_is_a_config_error_naming_the_key(config: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build({"bot": agent({"api_keys": [config]})})
    message = str(caught.value)
    assert "agents.bot.skills.auth.api_keys[0]" in message and words in message
    assert "short-key" not in message and "has a space" not in message  # never the key itself


def test_the_same_key_twice_is_refused() -> None:
    config = {"api_keys": [{"key": ALICE_KEY, "user_id": "a"}, {"key_hash": hash_key(ALICE_KEY), "user_id": "b"}]}
    with pytest.raises(ConfigError, match=r"api_keys\[1\]: the same key is configured as .*api_keys\[0\] too"):
        build({"bot": agent(config)})


def test_unknown_scope_or_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"agents.bot.skills.auth"):
        build({"bot": agent({"api_keys": [{"key": ALICE_KEY, "user_id": "a", "scopes": ["root"]}]})})
    with pytest.raises(ConfigError, match=r"agents.bot.skills.auth"):
        build({"bot": agent({"api_key": [{"key": ALICE_KEY, "user_id": "a"}]})})


def test_plaintext_keys_are_not_kept_anywhere_after_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBUTLER_TEST_BOB_KEY", BOB_KEY)
    config = keys_config()
    config["api_keys"][1] = {"key_env": "ROBUTLER_TEST_BOB_KEY", "user_id": "bob"}
    kernel = build({"bot": agent(config)})
    skill = auth_skill(kernel)
    # everything reachable from the skill (its config, key store, the agent spec, the kernel
    # and its config) holds digests, never a key
    reachable = strings_in(skill)
    assert len(reachable) > 20
    for key in (ALICE_KEY, BOB_KEY, ROOT_KEY):
        assert not any(key in s for s in reachable), "a plaintext key is still reachable"
    assert [e.digest for e in skill.keys.entries] == [hashlib.sha256(k.encode()).digest() for k in (ALICE_KEY, BOB_KEY, ROOT_KEY)]
    assert all(k.key is None and k.key_env is None for k in skill.config.api_keys)
    raw = kernel.agents["bot"].skills["auth"]["api_keys"]
    assert [k["key_hash"] for k in raw] == [hash_key(k) for k in (ALICE_KEY, BOB_KEY, ROOT_KEY)]
    # the scrubbed raw config still describes the same keys (a rebuild gives the same store)
    again = build({"bot": agent(kernel.agents["bot"].skills["auth"])})
    assert auth_skill(again).keys.entries == skill.keys.entries


async def test_keys_are_confirmed_with_compare_digest_on_the_full_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    kernel = build({"bot": agent(keys_config())})
    monkeypatch.setattr(hmac, "compare_digest", spy)
    async with openai_client(kernel, BOB_KEY) as client:
        await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}])
    presented = hashlib.sha256(BOB_KEY.encode()).digest()
    assert calls == [(presented, presented)]  # bob's stored digest against the presented one


def test_keys_sharing_an_index_prefix_are_all_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    # two stored digests with the same 8-byte prefix: both are candidates and both compared
    real = hashlib.sha256(ALICE_KEY.encode()).digest()
    twin = real[:8] + bytes(24)
    keys = store(
        {"key_hash": "sha256:" + twin.hex(), "user_id": "twin"},
        {"key": ALICE_KEY, "user_id": "alice"},
    )
    calls: list[bytes] = []
    original = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(a) or original(a, b))
    assert keys.lookup(ALICE_KEY).user_id == "alice"  # type: ignore[union-attr]
    assert calls == [twin, real]
    assert keys.lookup("x" * 30) is None

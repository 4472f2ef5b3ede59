"""The configuration example of ``docs/plugins/auth.md`` loads and behaves as documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import robutler_plugin_auth as auth
import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.config import parse_config

from .helpers import Whoami, openai_client, whoami

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "auth.md"
ALICE = "alice-doc-key-0123456789abcdefghij"
CI = "ci-doc-key-0123456789abcdefghijklm"


def doc_kernel(tmp_path: Path, private: Any) -> Kernel:
    text = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S).group(1)  # type: ignore[union-attr]
    pem = tmp_path / "jwt.pem"
    pem.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))
    assert "/etc/robutler/jwt.pem" in text and "openai/gpt-4o-mini" in text
    text = text.replace("/etc/robutler/jwt.pem", str(pem)).replace("openai/gpt-4o-mini", "scripted/echo")
    text = text.replace("    skills:\n", "    skills:\n      whoami: null\n")
    config = parse_config(text, str(DOC), env={"ALICE_API_KEY": ALICE, "CI_API_KEY": CI})
    return Kernel(config, plugins=[scripted, auth, Whoami], discover=False)


async def test_the_documented_example_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_API_KEY", CI)  # key_env is read from the process environment
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kernel = doc_kernel(tmp_path, private)
    async with openai_client(kernel, ALICE, "support") as client:
        assert await whoami(client) == {"user_id": "alice", "scopes": ["all", "owner"], "source": "api_key"}
    async with openai_client(kernel, CI, "support") as client:
        assert await whoami(client) == {"user_id": "ci-bot", "scopes": ["all", "admin"], "source": "api_key"}
    token = jwt.encode(
        {"sub": "erin", "exp": 4102444800, "aud": "robutler-support", "iss": "https://id.example.com"},
        private, algorithm="RS256",
    )
    async with openai_client(kernel, token, "support") as client:
        assert (await whoami(client))["source"] == "jwt"

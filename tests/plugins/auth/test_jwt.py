"""JWT bearer tokens (HS256, RS256) over HTTP with the official client, and what is refused."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from robutler_kernel.testing import kernel_client
from robutler_specs import ConfigError

from .helpers import HS_SECRET, agent, build, error_of, openai_client, post, token, whoami


@pytest.fixture(scope="module")
def auth_rsa() -> tuple[Any, str]:
    """An RSA key pair: the private key (signs test tokens) and the public PEM (configured)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public_pem


def hs_agent(**jwt: Any) -> dict[str, Any]:
    return agent({"jwt": {"secret": HS_SECRET, **jwt}}, owner="alice")


async def test_hs256_token_gives_identity_with_scopes_from_the_scope_claim() -> None:
    kernel = build({"bot": hs_agent()})
    async with openai_client(kernel, token(HS_SECRET, sub="bob", scope="openid admin")) as client:
        assert await whoami(client) == {"user_id": "bob", "scopes": ["all", "admin"], "source": "jwt"}


async def test_rs256_token_with_audience_issuer_and_a_scopes_list(auth_rsa: tuple[Any, str], tmp_path: Path) -> None:
    private, public_pem = auth_rsa
    pem_file = tmp_path / "jwt.pem"
    pem_file.write_text(public_pem)
    for key_config in ({"public_key": public_pem}, {"public_key_file": str(pem_file)}):
        config = {**key_config, "audience": "robutler-bot", "issuer": "https://id.example", "scopes_claim": "scopes"}
        kernel = build({"bot": agent({"jwt": config})})
        good = token(private, "RS256", sub="carol", aud="robutler-bot", iss="https://id.example", scopes=["admin"])
        async with openai_client(kernel, good) as client:
            assert await whoami(client) == {"user_id": "carol", "scopes": ["all", "admin"], "source": "jwt"}


async def test_owner_comes_from_sub_never_from_a_claimed_scope() -> None:
    kernel = build({"bot": hs_agent()})
    async with openai_client(kernel, token(HS_SECRET, sub="alice")) as client:
        assert (await whoami(client))["scopes"] == ["all", "owner"]
    async with openai_client(kernel, token(HS_SECRET, sub="mallory", scope="owner")) as client:
        assert (await whoami(client))["scopes"] == ["all"]


def rejected(auth_rsa: tuple[Any, str]) -> list[tuple[str, dict[str, Any], str, str, str]]:
    """(case, jwt config, token, code, words in the message)."""
    _, public_pem = auth_rsa
    now = int(time.time())
    aud = {"secret": HS_SECRET, "audience": "bot-aud", "issuer": "https://id.example"}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return [
        ("expired", {"secret": HS_SECRET}, token(HS_SECRET, exp=now - 3600), "token_expired", "the token expired at 20"),
        ("no exp", {"secret": HS_SECRET}, token(HS_SECRET, exp=None), "invalid_token", "no 'exp' claim"),
        ("no sub", {"secret": HS_SECRET}, token(HS_SECRET, sub=None), "invalid_token", "no 'sub' claim"),
        ("wrong aud", aud, token(HS_SECRET, aud="other", iss="https://id.example"), "invalid_token", "audience (aud) is not accepted"),
        ("missing aud", aud, token(HS_SECRET, iss="https://id.example"), "invalid_token", "no 'aud' claim"),
        ("unexpected aud", {"secret": HS_SECRET}, token(HS_SECRET, aud="x"), "invalid_token", "configure jwt.audience"),
        ("wrong iss", aud, token(HS_SECRET, aud="bot-aud", iss="https://evil.example"), "invalid_token", "issuer (iss) is not accepted"),
        ("bad signature", {"secret": HS_SECRET}, token(HS_SECRET + "x"), "invalid_token", "signature is not valid"),
        ("tampered", {"secret": HS_SECRET}, _tamper(token(HS_SECRET, sub="bob")), "invalid_token", "signature is not valid"),
        ("rs other key", {"public_key": public_pem}, token(other_key, "RS256"), "invalid_token", "signature is not valid"),
        ("alg none", {"secret": HS_SECRET}, token(None, "none"), "invalid_token", "algorithm 'none' is not accepted"),
        ("alg none rs", {"public_key": public_pem}, token(None, "none"), "invalid_token", "algorithm 'none' is not accepted"),
        # algorithm confusion: an HS256 token "signed" with the public key as the secret
        ("confusion", {"public_key": public_pem}, _hs_with(public_pem), "invalid_token", "algorithm 'HS256' is not accepted"),
        ("not yet", {"secret": HS_SECRET}, token(HS_SECRET, nbf=now + 3600), "invalid_token", "not valid yet"),
        ("garbage", {"secret": HS_SECRET}, "aaa.bbb.ccc", "invalid_token", "not a well-formed JWT"),
        ("sub not str", {"secret": HS_SECRET}, token(HS_SECRET, sub=5), "invalid_token", "is not valid"),
        ("bad scopes", {"secret": HS_SECRET}, token(HS_SECRET, scope={"admin": True}), "invalid_token", "'scope' claim must be"),
    ]


def _tamper(jwt_text: str) -> str:
    import base64
    import json

    header, payload, signature = jwt_text.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _hs_with(secret: str) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(
        json.dumps({"sub": "alice", "exp": int(time.time()) + 600, "scope": "admin"}).encode()
    )
    return signing + "." + b64(hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest())


async def test_bad_tokens_are_401_saying_why(auth_rsa: tuple[Any, str]) -> None:
    cases = rejected(auth_rsa)
    for case, jwt_config, jwt_text, code, words in cases:
        kernel = build({"bot": agent({"jwt": {**jwt_config, "leeway": 0}})})
        async with openai_client(kernel, jwt_text) as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}])
        response = caught.value.response
        error = response.json()["error"]
        assert (error["code"], words in error["message"]) == (code, True), (case, error)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="robutler", error="invalid_token", error_description="'), case
        assert jwt_text not in error["message"] and jwt_text not in challenge


async def test_leeway_accepts_a_token_that_just_expired() -> None:
    kernel = build({"bot": agent({"jwt": {"secret": HS_SECRET, "leeway": 60}})})
    async with openai_client(kernel, token(HS_SECRET, exp=int(time.time()) - 5)) as client:
        assert (await whoami(client))["user_id"] == "alice"


async def test_streamed_request_with_an_expired_token_gets_a_json_401() -> None:
    kernel = build({"bot": hs_agent(leeway=0)})
    async with kernel_client(kernel) as http:
        response = await post(http, {"authorization": f"Bearer {token(HS_SECRET, exp=int(time.time()) - 10)}"}, stream=True)
    assert response.status_code == 401 and response.headers["content-type"] == "application/json"
    assert error_of(response)["code"] == "token_expired"


async def test_hs256_and_rs256_side_by_side(auth_rsa: tuple[Any, str]) -> None:
    private, public_pem = auth_rsa
    kernel = build({"bot": agent({"jwt": {"secret": HS_SECRET, "public_key": public_pem}})})
    for jwt_text in (token(HS_SECRET, sub="h"), token(private, "RS256", sub="r")):
        async with openai_client(kernel, jwt_text) as client:
            assert (await whoami(client))["source"] == "jwt"


@pytest.mark.parametrize(
    ("jwt_config", "words"),
    [
        ({}, "give a secret (HS256) or a public_key"),
        ({"secret": "too-short"}, "jwt.secret: HS256 needs a secret of at least 32 bytes"),
        ({"secret": HS_SECRET, "algorithms": ["none"]}, "jwt.algorithms: 'none' is not accepted"),
        ({"secret": HS_SECRET, "algorithms": ["RS256"]}, "jwt.algorithms: RS256 needs"),
        ({"public_key": "not a pem"}, "jwt.public_key: not a PEM public key"),
        ({"secret": "-----BEGIN PUBLIC KEY-----\n" + "A" * 64 + "\n-----END PUBLIC KEY-----"}, "not usable as an HMAC secret"),
        ({"public_key_file": "/nonexistent/key.pem"}, "jwt.public_key_file: cannot read '/nonexistent/key.pem'"),
    ],
)
def test_bad_jwt_config_is_a_config_error(jwt_config: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build({"bot": agent({"jwt": jwt_config})})
    assert "agents.bot.skills.auth.jwt" in str(caught.value) and words in str(caught.value)


def test_a_key_that_cannot_verify_the_algorithm_is_a_config_error() -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(ConfigError, match="the public key cannot verify RS256"):
        build({"bot": agent({"jwt": {"public_key": ec_pem}})})
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(ConfigError, match="1024 bits is too weak"):
        build({"bot": agent({"jwt": {"public_key": weak}})})

"""The auth skill over HTTP: keys, missing and bad credentials, anonymous callers, scopes,
owner detection, fail-closed, agent info; in-process and over a real socket."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import openai
import pytest

from robutler_kernel.testing import HookRecorder, LiveServer, kernel_client
from robutler_plugin_auth import AuthSkill
from robutler_plugin_auth.keys import KeyStore
from robutler_specs import Skill

from .helpers import (
    ALICE_KEY,
    BOB_KEY,
    HS_SECRET,
    ROOT_KEY,
    agent,
    auth_skill,
    build,
    error_of,
    keys_config,
    openai_client,
    post,
    whoami,
)


def test_is_discovered_through_its_entry_point() -> None:
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="robutler.plugins")}
    assert names["auth"] == "robutler_plugin_auth"
    assert AuthSkill.name == "auth" and AuthSkill.priority == 5


async def test_valid_key_sets_the_identity() -> None:
    kernel = build({"bot": agent(keys_config())})
    async with openai_client(kernel, ALICE_KEY) as client:
        assert await whoami(client) == {"user_id": "alice", "scopes": ["all"], "source": "api_key"}
    async with openai_client(kernel, ROOT_KEY) as client:
        assert await whoami(client) == {"user_id": "root", "scopes": ["all", "admin"], "source": "api_key"}


async def test_x_api_key_header_works_too() -> None:
    kernel = build({"bot": agent(keys_config())})
    async with kernel_client(kernel) as http:
        response = await post(http, {"x-api-key": BOB_KEY})
    assert response.status_code == 200


async def test_bad_key_is_401_with_a_challenge() -> None:
    kernel = build({"bot": agent(keys_config())})
    async with openai_client(kernel, "wrong-key-0123456789abcdefghijk") as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "hi"}])
    response = caught.value.response
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert error["message"].startswith("the API key is not valid for agent 'bot'; send 'Authorization: Bearer")
    assert "wrong-key" not in error["message"]
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="robutler", error="invalid_token", error_description="{error["message"]}"'
    )


async def test_missing_credentials_is_401_with_a_bare_challenge() -> None:
    kernel = build({"bot": agent(keys_config(realm="acme"))})
    async with kernel_client(kernel) as http:
        response = await post(http)
        stream = await post(http, stream=True)
    for r in (response, stream):
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="acme"'
        error = error_of(r)
        assert error["code"] == "missing_credentials"
        assert "agent 'bot' requires authentication: send 'Authorization: Bearer <api key or token>'" in error["message"]


async def test_malformed_authorization_is_401_invalid_request() -> None:
    kernel = build({"bot": agent(keys_config())})
    async with kernel_client(kernel) as http:
        response = await post(http, {"authorization": f"Basic {ALICE_KEY}"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_request"
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_anonymous_callers_when_allowed_but_a_bad_key_is_still_refused() -> None:
    kernel = build({"bot": agent(keys_config(allow_anonymous=True))})
    async with openai_client(kernel, None) as client:
        assert await whoami(client) == {"user_id": None, "scopes": ["all"], "source": "anonymous"}
    async with openai_client(kernel, ALICE_KEY) as client:
        assert (await whoami(client))["user_id"] == "alice"
    async with openai_client(kernel, "not-the-key-0123456789abcdefgh") as client:
        with pytest.raises(openai.AuthenticationError):
            await whoami(client)


async def test_required_scope_too_low_is_403_and_anonymous_is_401() -> None:
    kernel = build({"bot": agent(keys_config(required_scope="admin", allow_anonymous=True))})
    async with openai_client(kernel, ALICE_KEY) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await whoami(client)
    response = caught.value.response
    error = response.json()["error"]
    assert response.status_code == 403 and error["type"] == "permission_error" and error["code"] == "insufficient_scope"
    assert error["message"] == "agent 'bot' can only be used with the 'admin' scope; user 'alice' has all"
    assert response.headers["www-authenticate"].startswith('Bearer realm="robutler", error="insufficient_scope"')
    assert response.headers["www-authenticate"].endswith('scope="admin"')
    async with openai_client(kernel, ROOT_KEY) as client:
        assert (await whoami(client))["user_id"] == "root"
    async with kernel_client(kernel) as http:
        anonymous = await post(http)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="robutler"'
    assert "anonymous callers do not have it" in error_of(anonymous)["message"]


async def test_the_configured_owner_gets_the_owner_scope() -> None:
    kernel = build({"bot": agent(keys_config(required_scope="owner"), owner="bob")})
    async with openai_client(kernel, BOB_KEY) as client:
        assert await whoami(client) == {"user_id": "bob", "scopes": ["all", "owner"], "source": "api_key"}
    async with openai_client(kernel, ROOT_KEY) as client:  # admin is above owner
        assert (await whoami(client))["user_id"] == "root"
    async with openai_client(kernel, ALICE_KEY) as client:
        with pytest.raises(openai.PermissionDeniedError):
            await whoami(client)


async def test_default_config_refuses_everyone_and_says_what_to_configure() -> None:
    """A skill that requires auth gets it added with defaults: nothing configured, fail closed."""

    class Billing(Skill):
        name = "billing"
        requires = ("auth",)

    kernel = build({"bot": {"model": "scripted/echo", "skills": {"billing": None}}}, Billing)
    async with kernel_client(kernel) as http:
        bare = await post(http)
        with_key = await post(http, {"authorization": f"Bearer {ALICE_KEY}"})
    for response in (bare, with_key):
        assert response.status_code == 401
        assert "operator must configure skills.auth (api_keys, jwt or portal_url)" in error_of(response)["message"]


async def test_an_error_inside_auth_rejects_the_request(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    recorder = HookRecorder()
    kernel = build({"bot": agent(keys_config(jwt={"secret": HS_SECRET}, allow_anonymous=True))}, recorder=recorder)
    skill = auth_skill(kernel)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database of keys exploded")

    async with kernel_client(kernel) as http:
        # the JWT verifier breaks; then the key store (which every credential goes through)
        monkeypatch.setattr(skill.jwt, "verify", broken)
        broken_jwt = await post(http, {"authorization": "Bearer a.b.c"})
        still_fine = await post(http, {"authorization": f"Bearer {ALICE_KEY}"})
        monkeypatch.setattr(KeyStore, "lookup", broken)
        broken_keys = await post(http, {"authorization": f"Bearer {ALICE_KEY}"})
        assert still_fine.status_code == 200
        for response in (broken_jwt, broken_keys):
            assert response.status_code == 401
            error = error_of(response)
            assert error["code"] == "auth_error" and "exploded" not in error["message"]
            assert "request was refused" in error["message"]
            assert response.headers["www-authenticate"].startswith('Bearer realm="robutler", error="invalid_token"')
    # nothing but the one good request reached a model, and the cause is in the log
    assert len(recorder.of("llm_complete")) == 1
    assert "database of keys exploded" in caplog.text


async def test_legacy_completions_and_v1_route_are_protected_too() -> None:
    kernel = build({"bot": agent(keys_config())})
    async with kernel_client(kernel) as http:
        legacy = await http.post("/v1/completions", json={"model": "bot", "prompt": "hi"})
        legacy_ok = await http.post(
            "/v1/completions", json={"model": "bot", "prompt": "hi"}, headers={"authorization": f"Bearer {ALICE_KEY}"}
        )
        v1 = await http.post("/v1/chat/completions", json={"model": "bot", "messages": [{"role": "user", "content": "x"}]})
    assert legacy.status_code == 401 and legacy.headers["www-authenticate"] == 'Bearer realm="robutler"'
    assert legacy_ok.status_code == 200
    assert v1.status_code == 401


async def test_agent_info_says_how_to_authenticate_without_secrets() -> None:
    config = keys_config(jwt={"secret": HS_SECRET, "audience": "bot", "issuer": "https://id.example"})
    kernel = build({"bot": agent(config)})
    async with kernel_client(kernel) as http:
        response = await http.get("/bot")
    assert response.status_code == 200
    info = response.json()["skill_info"]["auth"]
    assert info == {
        "methods": ["api_key", "jwt"],
        "header": "Authorization: Bearer <credential>",
        "allow_anonymous": False,
        "required_scope": "all",
        "jwt": {"algorithms": ["HS256"], "issuer": "https://id.example", "audience": "bot"},
    }
    text = response.text
    for secret in (ALICE_KEY, BOB_KEY, ROOT_KEY, HS_SECRET, "sha256:"):
        assert secret not in text


def test_official_sync_client_over_a_real_socket() -> None:
    kernel = build({"bot": agent(keys_config(allow_anonymous=False))})
    with LiveServer(kernel) as server:
        good = openai.OpenAI(base_url=f"{server.url}/v1", api_key=ROOT_KEY, max_retries=0, timeout=10)
        reply = good.chat.completions.create(model="bot", messages=[{"role": "user", "content": "call whoami"}])
        streamed = good.chat.completions.create(model="bot", messages=[{"role": "user", "content": "yo"}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope-nope-nope-nope-nope", max_retries=0, timeout=10)
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.chat.completions.create(model="bot", messages=[{"role": "user", "content": "x"}], stream=True)
    content = reply.choices[0].message.content or ""
    assert json.loads(content.removeprefix("Tool whoami returned: "))["scopes"] == ["all", "admin"]
    assert text == "You said: yo"
    assert caught.value.status_code == 401
    assert caught.value.response.headers["www-authenticate"].startswith('Bearer realm="robutler", error="invalid_token"')


async def test_models_are_checked_after_auth_so_strangers_learn_none() -> None:
    spec = {**agent(keys_config()), "allowed_models": ["scripted/echo"]}
    kernel = build({"bot": spec})
    async with openai_client(kernel, "wrong-key-0123456789abcdefghijk") as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model="openai/secret-model", messages=[{"role": "user", "content": "hi"}])
    assert "scripted/echo" not in refused.value.message
    async with openai_client(kernel, ALICE_KEY) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="openai/secret-model", messages=[{"role": "user", "content": "hi"}])
    assert "scripted/echo" in caught.value.message

"""Tools and prompts above the caller's scope are neither listed to the model nor run,
even when the model names them: end to end, with the auth skill setting the identity."""

from __future__ import annotations

from typing import Any

import pytest

from robutler_kernel.testing import HookRecorder, kernel_client
from robutler_specs import HttpRequest, RequestContext, Skill, http, prompt, tool

from .helpers import ALICE_KEY, BOB_KEY, HS_SECRET, ROOT_KEY, build, keys_config, openai_client, token

RAN: list[str] = []


class Vault(Skill):
    """Tools and prompt fragments of every scope; records which tools actually ran."""

    name = "vault"

    @tool
    def public_info(self) -> str:
        """Anyone may ask."""
        RAN.append("public_info")
        return "public"

    @tool(scope="owner")
    def owner_report(self) -> str:
        """The owner's report."""
        RAN.append("owner_report")
        return "report"

    @tool(scope="admin")
    def purge(self, ctx: RequestContext) -> str:
        """Delete everything."""
        RAN.append("purge")
        return f"purged by {ctx.identity.user_id}"

    @http("stats", methods=["GET"], scope="admin")
    def stats(self, ctx: RequestContext, request: HttpRequest) -> dict[str, Any]:
        return {"user": ctx.identity.user_id}

    @prompt(scope="owner")
    def owner_hint(self) -> str:
        return "OWNER-FRAGMENT"

    @prompt(scope="admin")
    def admin_hint(self) -> str:
        return "ADMIN-FRAGMENT"


def vault_agent(auth_config: dict[str, Any]) -> dict[str, Any]:
    """The model names ``purge`` (admin) on its first turn, whoever is calling."""
    script = [{"tool_calls": [{"name": "purge"}]}, {"content": "done"}]
    return {
        "model": "scripted/greedy",
        "owner": "bob",
        "skills": {"auth": auth_config, "vault": None, "scripted": {"scripts": {"greedy": script}}},
    }


@pytest.fixture
def auth_vault() -> tuple[Any, HookRecorder]:
    RAN.clear()
    recorder = HookRecorder()
    config = keys_config(allow_anonymous=True, jwt={"secret": HS_SECRET})
    return build({"bot": vault_agent(config)}, Vault, recorder=recorder), recorder


def offered(recorder: HookRecorder) -> list[set[str]]:
    """The tool names listed to the model, per LLM call."""
    return [{t.function.name for t in c.kwargs["call"].tools} for c in recorder.of("before_llm_call")]


def system_prompt(recorder: HookRecorder) -> str:
    call = recorder.of("before_llm_call")[0].kwargs["call"]
    return call.messages[0].content if call.messages[0].role == "system" else ""


def tool_result(recorder: HookRecorder) -> str:
    last = recorder.of("before_llm_call")[-1].kwargs["call"]
    return next(m.content for m in last.messages if m.role == "tool")


@pytest.mark.parametrize("caller", ["anonymous", "alice-key", "alice-jwt-claiming-owner"])
async def test_admin_tool_is_hidden_and_refused_for_lower_scopes(auth_vault: Any, caller: str) -> None:
    kernel, recorder = auth_vault
    key = {"anonymous": None, "alice-key": ALICE_KEY, "alice-jwt-claiming-owner": token(HS_SECRET, scope="owner")}[caller]
    async with openai_client(kernel, key) as client:
        reply = await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "go"}])
    assert reply.choices[0].message.content == "done"
    # not listed: the first call offered only the public tool
    assert offered(recorder)[0] == {"public_info"}
    assert "OWNER-FRAGMENT" not in system_prompt(recorder) and "ADMIN-FRAGMENT" not in system_prompt(recorder)
    # named anyway by the model: not run, and the model was told so
    assert "purge" not in RAN
    assert tool_result(recorder) == "Error: there is no tool named 'purge' available to you."
    assert not recorder.of("before_toolcall")


async def test_owner_sees_owner_tools_but_not_admin_ones(auth_vault: Any) -> None:
    kernel, recorder = auth_vault
    async with openai_client(kernel, BOB_KEY) as client:  # bob is the agent's owner
        await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "go"}])
    assert offered(recorder)[0] == {"public_info", "owner_report"}
    assert "OWNER-FRAGMENT" in system_prompt(recorder) and "ADMIN-FRAGMENT" not in system_prompt(recorder)
    assert "purge" not in RAN
    assert "no tool named 'purge'" in tool_result(recorder)


@pytest.mark.parametrize("credential", ["key", "jwt"])
async def test_admin_caller_sees_and_runs_the_admin_tool(auth_vault: Any, credential: str) -> None:
    kernel, recorder = auth_vault
    key = ROOT_KEY if credential == "key" else token(HS_SECRET, sub="root", scope="admin")
    async with openai_client(kernel, key) as client:
        reply = await client.chat.completions.create(model="bot", messages=[{"role": "user", "content": "go"}])
    assert reply.choices[0].message.content == "done"
    assert offered(recorder)[0] == {"public_info", "owner_report", "purge"}
    assert "OWNER-FRAGMENT" in system_prompt(recorder) and "ADMIN-FRAGMENT" in system_prompt(recorder)
    assert RAN == ["purge"]
    assert tool_result(recorder) == "purged by root"
    assert [c.kwargs["call"].name for c in recorder.of("before_toolcall")] == ["purge"]


async def test_streamed_requests_are_filtered_the_same_way(auth_vault: Any) -> None:
    kernel, recorder = auth_vault
    async with openai_client(kernel, ALICE_KEY) as client:
        stream = await client.chat.completions.create(
            model="bot", messages=[{"role": "user", "content": "go"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "done"
    assert offered(recorder)[0] == {"public_info"} and "purge" not in RAN


async def test_skill_http_endpoints_follow_the_same_scopes(auth_vault: Any) -> None:
    kernel, _ = auth_vault
    async with kernel_client(kernel) as http_client:
        anonymous = await http_client.get("/bot/stats")
        alice = await http_client.get("/bot/stats", headers={"authorization": f"Bearer {ALICE_KEY}"})
        bad = await http_client.get("/bot/stats", headers={"authorization": "Bearer wrong-wrong-wrong-wrong"})
        root = await http_client.get("/bot/stats", headers={"authorization": f"Bearer {ROOT_KEY}"})
    assert anonymous.status_code == 401 and alice.status_code == 403
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith('Bearer realm="robutler", error="invalid_token"')
    assert root.status_code == 200 and root.json() == {"user": "root"}

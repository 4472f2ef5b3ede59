"""The kernel's A2A server, driven by the official a2a-sdk client over a real socket."""

from __future__ import annotations

import importlib.metadata
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from a2a.client import ClientCallContext
from a2a.types import GetTaskRequest, TaskState

import robutler_plugin_a2a as a2a
import robutler_plugin_auth as auth
import robutler_plugin_payments as payments
import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, make_kernel
from robutler_plugin_payments import LedgerConfig, make_ledger

from .support import ALICE_KEY, ask, events, sdk_client

PLUGINS = [scripted, auth, payments, a2a]
AUTH = {"api_keys": [{"key": ALICE_KEY, "user_id": "alice"}]}
SCRIPTS = {"two": [{"content": "first answer"}, {"content": "second answer"}],
           "broken": [{"error": "upstream exploded"}]}


def agents(**extra: Any) -> dict[str, Any]:
    return {
        "bot": {"description": "Echoes what it is told", "intents": ["echo", "testing"], "model": "scripted/echo",
                "skills": {"a2a": {"examples": ["Hello"]}}},
        "two": {"model": "scripted/two", "skills": {"a2a": {}, "scripted": {"scripts": SCRIPTS}}},
        "broken": {"model": "scripted/broken", "retry": {"attempts": 1},
                   "skills": {"a2a": {}, "scripted": {"scripts": SCRIPTS}}},
        "private": {"model": "scripted/echo"},
        **extra,
    }


@pytest.fixture(scope="module")
def server() -> Any:
    with LiveServer(make_kernel(agents(), plugins=PLUGINS)) as live:
        yield live


def text_of(task: Any) -> str:
    return "".join(part.text for artifact in task.artifacts for part in artifact.parts)


def test_the_entry_point_is_discoverable() -> None:
    names = [ep.name for ep in importlib.metadata.entry_points(group="robutler.plugins")]
    assert "a2a" in names


async def test_the_card_describes_the_agent(server: Any) -> None:
    async with httpx.AsyncClient() as http:
        card = (await http.get(f"{server.url}/bot/.well-known/agent-card.json")).json()
        legacy = await http.get(f"{server.url}/bot/.well-known/agent.json")
        off = await http.get(f"{server.url}/private/.well-known/agent-card.json")
        unknown = await http.get(f"{server.url}/nobody/.well-known/agent-card.json")
    assert card["name"] == "bot" and card["description"] == "Echoes what it is told"
    assert card["capabilities"]["streaming"] is True
    assert {i["protocolVersion"] for i in card["supportedInterfaces"]} == {"1.0", "0.3"}
    assert card["supportedInterfaces"][0]["url"] == f"{server.url}/bot/a2a"
    assert card["url"] == f"{server.url}/bot/a2a"  # the 0.3 field beside the 1.0 ones
    assert card["skills"] == [{"id": "bot", "name": "bot", "description": "Echoes what it is told",
                               "tags": ["echo", "testing"], "examples": ["Hello"]}]
    assert "securitySchemes" not in card  # no auth skill: no credentials asked for
    assert legacy.json() == card
    assert off.status_code == 404 and "skills: {a2a: {}}" in off.json()["error"]["message"]
    assert unknown.status_code == 404


async def test_message_send_answers_with_a_completed_task_kept_for_tasks_get(server: Any) -> None:
    async with httpx.AsyncClient() as http:
        client = await sdk_client(f"{server.url}/bot", http, streaming=False)
        [(kind, task)] = await events(client, ask("Hello there"))
        again = await client.get_task(GetTaskRequest(id=task.id))
    assert kind == "task"
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert text_of(task) == "You said: Hello there"
    assert [m.role for m in task.history] == [1, 2]  # the user's message, then the agent's
    assert task.history[-1].parts[0].text == "You said: Hello there"
    assert again.id == task.id and again.status.state == TaskState.TASK_STATE_COMPLETED


async def test_message_stream_goes_submitted_working_completed_with_the_answer_in_pieces(server: Any) -> None:
    async with httpx.AsyncClient() as http:
        client = await sdk_client(f"{server.url}/bot", http, streaming=True)
        seen = await events(client, ask("one two three"))
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "task" and seen[0][1].status.state == TaskState.TASK_STATE_SUBMITTED
    assert kinds[1] == "status_update" and seen[1][1].status.state == TaskState.TASK_STATE_WORKING
    assert kinds[-1] == "status_update" and seen[-1][1].status.state == TaskState.TASK_STATE_COMPLETED
    pieces = [payload for kind, payload in seen if kind == "artifact_update"]
    assert len(pieces) > 2  # streamed word by word, not at once
    assert "".join(p.artifact.parts[0].text for p in pieces) == "You said: one two three"
    assert not pieces[0].append and all(p.append for p in pieces[1:]) and pieces[-1].last_chunk


async def test_a_context_goes_on_with_its_history(server: Any) -> None:
    async with httpx.AsyncClient() as http:
        client = await sdk_client(f"{server.url}/two", http, streaming=False)
        [(_, first)] = await events(client, ask("a"))
        [(_, second)] = await events(client, ask("b", context_id=first.context_id, message_id="m-2"))
        [(_, fresh)] = await events(client, ask("c", message_id="m-3"))
    # The scripted model plays the turn after the assistant messages it is sent.
    assert text_of(first) == "first answer" and text_of(second) == "second answer"
    assert second.context_id == first.context_id and second.id != first.id
    assert text_of(fresh) == "first answer"


async def test_a_failing_agent_gives_a_failed_task_that_says_why(server: Any) -> None:
    async with httpx.AsyncClient() as http:
        plain = await sdk_client(f"{server.url}/broken", http, streaming=False)
        [(_, task)] = await events(plain, ask("hi"))
        streaming = await sdk_client(f"{server.url}/broken", http, streaming=True)
        seen = await events(streaming, ask("hi"))
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert "upstream exploded" in task.status.message.parts[0].text
    assert task.metadata["error"]["status"] == 502
    last = seen[-1][1]
    assert last.status.state == TaskState.TASK_STATE_FAILED and "upstream exploded" in last.status.message.parts[0].text


async def test_protocol_0_3_method_names_on_the_same_endpoint(server: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 7, "params": {"message": {
        "role": "user", "messageId": "x", "kind": "message", "parts": [{"kind": "text", "text": "old client"}]}}}
    async with httpx.AsyncClient() as http:
        sent = (await http.post(f"{server.url}/bot/a2a", json={**body, "method": "message/send"})).json()
        streamed = await http.post(f"{server.url}/bot/a2a", json={**body, "method": "message/stream"})
        nonsense = (await http.post(f"{server.url}/bot/a2a", json={"jsonrpc": "2.0", "id": 8, "method": "nope"})).json()
        garbage = await http.post(f"{server.url}/bot/a2a", content=b"{not json")
    assert sent["id"] == 7 and sent["result"]["kind"] == "task"
    assert sent["result"]["status"]["state"] == "completed"
    assert sent["result"]["artifacts"][0]["parts"][0]["text"] == "You said: old client"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    results = [json.loads(line[6:])["result"] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert results[-1]["kind"] == "status-update" and results[-1]["status"]["state"] == "completed"
    assert results[-1]["final"] is True
    assert nonsense["error"]["code"] == -32601
    assert garbage.json()["error"]["code"] == -32700  # JSON-RPC's parse error


# -- auth and payments -------------------------------------------------------------------------


async def test_auth_is_required_and_payments_charge_each_message(tmp_path: Path) -> None:
    ledger_settings = {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")}
    book = make_ledger(msgspec.convert(ledger_settings, LedgerConfig))
    await book.open()
    await book.create_account("alice", 10_000_000)
    paid = {"model": "scripted/echo", "skills": {
        "a2a": {}, "auth": AUTH, "payments": {**ledger_settings, "request_fee": "0.5", "models": {"scripted/*": {"prompt": "0", "completion": "0"}}}}}
    try:
        with LiveServer(make_kernel({"paid": paid}, plugins=PLUGINS)) as live:
            async with httpx.AsyncClient() as http:
                card = (await http.get(f"{live.url}/paid/.well-known/agent-card.json")).json()
                client = await sdk_client(f"{live.url}/paid", http, streaming=False)
                with pytest.raises(Exception) as refused:
                    await events(client, ask("hi"))
                keyed = ClientCallContext(service_parameters={"Authorization": f"Bearer {ALICE_KEY}"})
                [answer] = [e async for e in client.send_message(ask("hi"), context=keyed)]
                streaming = await sdk_client(f"{live.url}/paid", http, streaming=True)
                streamed = [e async for e in streaming.send_message(ask("hi there"), context=keyed)]
                raw = await http.post(f"{live.url}/paid/a2a", headers={"Authorization": f"Bearer {ALICE_KEY}"},
                                      json={"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
                                          "message": {"role": "user", "messageId": "x", "parts": [
                                              {"kind": "text", "text": "hi"}]}}})
        account = await book.account("alice")
    finally:
        await book.close()
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert "401" in str(refused.value)
    assert answer.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert streamed[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert raw.headers["x-robutler-cost"] == "0.5" and raw.headers["x-request-id"]
    assert account is not None
    # Three messages, the fee once each: nothing for the refused one, nothing charged twice.
    assert Decimal(account.available) / 1_000_000 == Decimal("8.5")
    assert account.reserved == 0

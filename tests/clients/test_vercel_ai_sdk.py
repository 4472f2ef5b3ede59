"""The Vercel AI SDK (npm ``ai`` with ``@ai-sdk/openai``), run by Node.js: ``generateText``
and ``streamText`` on ``createOpenAI({baseURL}).chat(agent)`` (chat completions) and on
``.responses(agent)`` (the Responses API, the SDK's default OpenAI model).

Each test scripts the fake upstream, runs one scenario of ``vercel/run.mjs`` in a ``node``
process against the served agent, and checks the JSON it prints: what the SDK handed its
user (text, deltas, finish reasons, usage, tool calls and results, errors)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.clients import scenarios as s
from tests.clients.conftest import TRANSPORTS, VERCEL

pytestmark = pytest.mark.clients

#: Seconds a scenario may take: Node.js starts in under a second; a hung stream must fail.
TIMEOUT = 60

ANSWER = "Hello there, my friend."


def usage_of(tokens: dict[str, int]) -> dict[str, int]:
    """Chat's names for the SDK's usage."""
    return {"inputTokens": tokens["prompt_tokens"], "outputTokens": tokens["completion_tokens"],
            "totalTokens": tokens.get("total_tokens", tokens["prompt_tokens"] + tokens["completion_tokens"])}


TOOL_ROUND = usage_of(s.USAGE_TOOL_ROUND)
ANSWER_ROUND = usage_of(s.USAGE_ANSWER)
TWO_CALLS = usage_of(s.TOTAL_TWO_CALLS)


@pytest.fixture
def agent() -> str:
    """The agent on the default chat transport (``direct``) only. The transports differ
    between the server and its upstream, which the other modules check on both (the
    official client byte for byte), and every test here starts Node.js (about half a second)."""
    return TRANSPORTS["direct"]


@pytest.fixture(params=["chat", "responses"])
def api(request: pytest.FixtureRequest) -> str:
    """The SDK's OpenAI model: ``chat`` (``/chat/completions``) or ``responses`` (``/responses``)."""
    return str(request.param)


def run(scenario: str, base_url: str, api: str, model: str) -> dict[str, Any]:
    """What ``vercel/run.mjs`` prints for ``scenario``."""
    node = shutil.which("node")
    assert node, "node is not on PATH"
    done = subprocess.run([node, "run.mjs", scenario, base_url, api, model], cwd=VERCEL,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0 and done.stdout, f"node run.mjs {scenario} failed: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def answered(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` after checking that the SDK raised and streamed no error."""
    assert result.get("error") is None and not result.get("errors"), result
    return result


def test_text(base_url: str, api: str, agent: str, fake: Any) -> None:
    fake.add_reply(ANSWER, usage=s.USAGE_ANSWER)
    result = answered(run("generate", base_url, api, agent))
    assert result["text"] == ANSWER and result["finishReason"] == "stop"
    assert result["usage"] == result["totalUsage"] == ANSWER_ROUND
    assert len(result["steps"]) == 1 and result["responseModel"] == agent


def test_text_streamed(base_url: str, api: str, agent: str, fake: Any) -> None:
    fake.add_reply(ANSWER, usage=s.USAGE_ANSWER)
    result = answered(run("stream", base_url, api, agent))
    assert len(result["deltas"]) > 1, "the answer must arrive in pieces"
    assert "".join(result["deltas"]) == result["text"] == ANSWER
    assert result["finishReason"] == result["finish"]["finishReason"] == "stop"
    assert result["usage"] == result["totalUsage"] == result["finish"]["totalUsage"] == ANSWER_ROUND
    assert fake.last_request.json["stream"] is True


@pytest.mark.parametrize("scenario", ["generate-tool", "stream-tool"])
def test_client_tool(base_url: str, api: str, agent: str, fake: Any, scenario: str) -> None:
    """The SDK runs the client's tool between two steps; the model gets its result."""
    s.script_client_tool(fake)
    result = answered(run(scenario, base_url, api, agent))
    assert result["executions"] == [{"tz": "UTC"}]
    first, second = result["steps"]
    assert first["finishReason"] == "tool-calls"
    assert first["toolCalls"] == [{"toolCallId": s.CLIENT_CALL_ID, "toolName": "get_local_time", "input": {"tz": "UTC"}}]
    assert first["toolResults"] == [{"toolCallId": s.CLIENT_CALL_ID, "toolName": "get_local_time", "output": s.CLIENT_TOOL_RESULT}]
    assert result["text"] == second["text"] == s.CLIENT_ANSWER and result["finishReason"] == "stop"
    assert [first["usage"], second["usage"]] == [TOOL_ROUND, ANSWER_ROUND]
    assert result["totalUsage"] == TWO_CALLS, "each step's usage counted once"
    if scenario == "stream-tool":
        assert "".join(result["deltas"]) == s.CLIENT_ANSWER
    assert "get_local_time" in s.offered_tools(fake, 0)
    s.assert_client_result_reached_upstream(fake)


def test_client_tool_after_text(base_url: str, api: str, agent: str, fake: Any) -> None:
    """The model writes a sentence before calling the client's tool; the next step sends
    that text back (the Responses model by reference to the stored item), and the model
    gets it with the call and its result."""
    fake.add_reply("Let me look.", tool_calls=[s.client_call()], usage=s.USAGE_TOOL_ROUND)
    fake.add_reply(s.CLIENT_ANSWER, usage=s.USAGE_ANSWER)
    result = answered(run("generate-tool", base_url, api, agent))
    assert [step["text"] for step in result["steps"]] == ["Let me look.", s.CLIENT_ANSWER]
    assert result["totalUsage"] == TWO_CALLS
    s.assert_client_result_reached_upstream(fake)
    before = [m for m in s.upstream_messages(fake) if m.get("role") == "assistant"]
    assert [(m.get("content"), [c["id"] for c in m.get("tool_calls") or ()]) for m in before] == [
        ("Let me look.", [s.CLIENT_CALL_ID])], before


@pytest.mark.parametrize("scenario", ["generate", "stream"])
def test_server_tool(base_url: str, api: str, agent: str, fake: Any, scenario: str) -> None:
    """The agent's own tool runs in the server: the SDK sees one step, the answer, and the
    usage of both upstream calls."""
    s.script_server_tool(fake)
    result = answered(run(scenario, base_url, api, agent))
    (step,) = result["steps"]
    assert step["toolCalls"] == [] and result["executions"] == []
    assert result["text"] == s.SERVER_ANSWER and result["finishReason"] == "stop"
    assert result["usage"] == result["totalUsage"] == TWO_CALLS
    if scenario == "stream":
        assert "".join(result["deltas"]) == s.SERVER_ANSWER
    s.assert_server_tool_ran(fake)


def test_mixed_turn(base_url: str, api: str, agent: str, fake: Any) -> None:
    s.script_mixed(fake)
    result = answered(run("generate-tool", base_url, api, agent))
    assert result["executions"] == [{"tz": "UTC"}]
    assert [c["toolName"] for c in result["steps"][0]["toolCalls"]] == ["get_local_time"]
    assert result["text"] == s.MIXED_ANSWER
    s.assert_mixed_turn_seen(fake)


def test_structured_output(base_url: str, api: str, agent: str, fake: Any) -> None:
    s.script_structured(fake)
    result = answered(run("generate-object", base_url, api, agent))
    assert result["object"] == s.CITY.model_dump()
    assert result["totalUsage"] == ANSWER_ROUND
    s.assert_schema_reached_upstream(fake)


def test_conversation(base_url: str, api: str, agent: str, fake: Any) -> None:
    """A second turn sends the first's ``response.messages`` back (the Responses model by
    reference to the stored item); the model sees the whole conversation, once."""
    fake.add_reply(ANSWER, usage=s.USAGE_TOOL_ROUND)
    fake.add_reply(s.SERVER_ANSWER, usage=s.USAGE_ANSWER)
    result = answered(run("conversation", base_url, api, agent))
    assert result["turns"] == [ANSWER, s.SERVER_ANSWER] and result["usage"] == ANSWER_ROUND
    said = [(m["role"], m["content"] if isinstance(m["content"], str) else "".join(p["text"] for p in m["content"]))
            for m in s.upstream_messages(fake) if m["role"] != "system"]
    assert said == [("user", "Hello"), ("assistant", ANSWER), ("user", "And then?")]


@pytest.mark.parametrize("scenario", ["generate", "stream"])
def test_unknown_agent(base_url: str, api: str, fake: Any, scenario: str) -> None:
    """An unknown model is the SDK's APICallError with our 404 and message."""
    result = run(scenario, base_url, api, "no-such-agent")
    (error,) = result["errors"] if scenario == "stream" else [result["error"]]
    assert error["isAPICallError"] and error["statusCode"] == 404, error
    assert error["message"].startswith("no agent named 'no-such-agent' (agents: "), error
    assert json.loads(error["responseBody"])["error"]["code"] == "model_not_found"
    assert fake.requests == []


@pytest.mark.parametrize("scenario", ["generate", "stream"])
def test_upstream_error(base_url: str, api: str, agent: str, fake: Any, scenario: str) -> None:
    """An upstream failure before any token is the SDK's APICallError with our 502."""
    fake.add_error(500, "the upstream is down")
    result = run(scenario, base_url, api, agent)
    (error,) = result["errors"] if scenario == "stream" else [result["error"]]
    assert error["isAPICallError"] and error["statusCode"] == 502, error
    assert "the upstream is down" in error["message"], error


def test_stream_broken_mid_answer(base_url: str, api: str, agent: str, fake: Any) -> None:
    """An upstream that breaks off after a few words: the SDK keeps the text so far, ends
    the step with finish reason ``error`` and hands over our message in an error part."""
    fake.add_reply(ANSWER, fault="truncate", fault_after=3)
    result = run("stream", base_url, api, agent)
    assert "".join(result["deltas"]) == result["text"] and result["text"] and result["text"] != ANSWER
    assert result["finishReason"] == "error"
    (error,) = result["errors"]
    assert "ended without a finish reason" in error["message"], error

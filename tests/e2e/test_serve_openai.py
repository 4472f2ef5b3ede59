"""End to end: ``robutler-kernel serve`` as a subprocess, the official ``openai`` client in
front of it, and a fake OpenAI server behind it, all over real loopback HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from robutler_kernel.testing import FakeOpenAI, ServeProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_local_time",
        "description": "Runs on the client",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}


def write_config(path: Path, upstream: str) -> None:
    path.write_text(
        f"""
server: {{host: 127.0.0.1, port: 0, metrics_port: null, max_body_bytes: 4096}}
agents:
  assistant:
    description: Helps with anything
    instructions: You are a helpful assistant.
    model: openai/gpt-4o-mini
    retry: {{attempts: 1}}  # errors below reach the client as they are
    skills:
      openai: {{api_key: "test-key", base_url: "{upstream}", timeout: 2}}
    tools: ["tests.kernel.sample_tools:get_weather"]
  offline:
    model: scripted/echo
"""
    )


def start_server(config: Path) -> ServeProcess:
    """The server under test: only this project's two model plugins, tools from the repo."""
    return ServeProcess(config, env={"PYTHONPATH": str(ROOT)}, cwd=ROOT)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    config = tmp_path_factory.mktemp("e2e") / "robutler.yaml"
    write_config(config, upstream.base_url)
    running = start_server(config)
    yield running
    running.stop()


@pytest.fixture
def fake(upstream: FakeOpenAI) -> FakeOpenAI:
    upstream.reset()
    return upstream


@pytest.fixture
def client(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_serve_prints_the_url_and_a_curl_line(server: ServeProcess) -> None:
    text = "".join(server.output)
    assert f"{server.url}/assistant/chat/completions  (openai/gpt-4o-mini)" in text
    assert any(line.strip().startswith(f"curl {server.url}/assistant/chat/completions") for line in server.output)


def test_completion(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("Hello from upstream", usage={"prompt_tokens": 11, "completion_tokens": 3})
    completion = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "Hi"}], temperature=0.3, seed=4
    )
    assert completion.choices[0].message.content == "Hello from upstream"
    assert completion.model == "assistant"
    assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 3)
    sent = fake.last_request.json
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.3 and sent["seed"] == 4
    assert sent["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
    assert fake.last_request.headers["authorization"] == "Bearer test-key"


def test_streaming(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("one two three", usage={"prompt_tokens": 5, "completion_tokens": 3})
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "count"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert fake.last_request.json["stream"] is True


def test_internal_tool_loop(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}], usage={"prompt_tokens": 10, "completion_tokens": 5})
    fake.add_reply("It is sunny in Oslo.", usage={"prompt_tokens": 20, "completion_tokens": 6})
    completion = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "Weather in Oslo?"}])
    assert completion.choices[0].message.content == "It is sunny in Oslo."
    assert completion.usage is not None and completion.usage.total_tokens == 41  # summed over both calls
    first, second = fake.requests[-2].json, fake.requests[-1].json
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "Sunny in Oslo"
    assert second["messages"][-2]["tool_calls"][0]["id"] == tool_message["tool_call_id"]


def test_client_tool_round_trip(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply(tool_calls=[{"name": "get_local_time", "arguments": {"tz": "UTC"}, "id": "call_client_1"}])
    first = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "Time?"}], tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_client_1" and json.loads(call.function.arguments) == {"tz": "UTC"}
    fake.add_reply("It is noon.")
    second = client.chat.completions.create(
        model="assistant",
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Time?"},
            {"role": "assistant", "tool_calls": [{"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "12:00"},
        ],
    )
    assert second.choices[0].message.content == "It is noon."
    assert fake.last_request.json["messages"][-1] == {"role": "tool", "content": "12:00", "tool_call_id": "call_client_1"}


def test_client_tool_round_trip_streaming(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply(tool_calls=[{"name": "get_local_time", "arguments": {"tz": "CET"}, "id": "call_s"}])
    chunks = list(client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "Time?"}], tools=[WEATHER], stream=True
    ))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].index == 0 and deltas[0].id == "call_s" and deltas[0].function.name == "get_local_time"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"tz": "CET"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_malformed_json_is_400(server: ServeProcess) -> None:
    response = httpx.post(f"{server.url}/assistant/chat/completions", content=b"{oops", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_wrong_type_is_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "x"}], max_tokens="many")  # type: ignore[arg-type]
    assert caught.value.body["param"] == "max_tokens"  # type: ignore[index]


def test_unknown_agent_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "x"}])


def test_body_too_large_is_413(server: ServeProcess) -> None:
    response = httpx.post(f"{server.url}/assistant/chat/completions", json={"messages": [{"role": "user", "content": "x" * 10_000}]})
    assert response.status_code == 413 and "max_body_bytes" in response.json()["error"]["message"]


def test_provider_failure_is_502_with_the_providers_message(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_error(500, "the model is on a coffee break")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert "coffee break" in caught.value.message


def test_provider_timeout_is_504(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.add_reply("too late", delay=5)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 504


def test_disconnect_mid_stream_cancels_the_upstream_request(server: ServeProcess, fake: FakeOpenAI) -> None:
    fake.add_reply("a b c d e f g h i j k l", chunk_delay=0.2)
    with httpx.stream(
        "POST", f"{server.url}/assistant/chat/completions",
        json={"stream": True, "messages": [{"role": "user", "content": "slow please"}]},
    ) as response:
        for line in response.iter_lines():
            if '"content":"a ' in line:
                break
    assert fake.wait_cancelled(5), "the upstream request was not cancelled when the client left"


def test_offline_agent_on_the_same_server(server: ServeProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/offline", api_key="unused")
    reply = client.chat.completions.create(model="offline", messages=[{"role": "user", "content": "ping"}])
    assert reply.choices[0].message.content == "You said: ping"


def test_sigint_shuts_down_cleanly(upstream: FakeOpenAI, tmp_path: Path) -> None:
    config = tmp_path / "robutler.yaml"
    write_config(config, upstream.base_url)
    server = start_server(config)
    assert httpx.get(f"{server.url}/health").json()["status"] == "healthy"
    server.stop()
    assert server.process.returncode == 0


def _unused(*_: Any) -> None:
    """Keeps type checkers quiet about fixtures used only for their effects."""


def test_chat_command_streams_from_a_running_server(server: ServeProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "robutler_kernel.cli", "chat", "offline", "--url", server.url, "--message", "over the wire"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "offline> You said: over the wire" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "robutler_kernel.cli", "chat", "nobody", "--url", server.url, "--message", "x"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert missing.returncode == 1 and "error (404)" in missing.stderr

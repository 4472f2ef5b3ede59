"""``POST /v1/completions``: the whole legacy text-completion API (V1 compatibility), in
process and with the official ``openai`` client over a real socket, streamed and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import HookRecorder, LiveServer, kernel_client, make_kernel

TWO = {"bot": {"model": "scripted/echo"}, "helper": {"model": "scripted/echo"}}


def events(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body (``[DONE]`` kept as the string)."""
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


async def post(kernel: Any, body: dict[str, Any]) -> Any:
    async with kernel_client(kernel) as client:
        return await client.post("/v1/completions", json=body)


async def test_the_legacy_shape_with_an_agent_named() -> None:
    response = await post(make_kernel(TWO, plugins=[scripted]), {"model": "helper", "prompt": "old school"})
    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-") and body["model"] == "helper"
    assert body["choices"] == [{"text": "You said: old school", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert response.headers["x-request-id"].startswith("chatcmpl-")


async def test_a_list_of_one_prompt_is_that_prompt() -> None:
    response = await post(make_kernel(TWO, plugins=[scripted]), {"model": "bot", "prompt": ["just this"]})
    assert response.json()["choices"][0]["text"] == "You said: just this"


async def test_model_omitted_is_the_only_agent() -> None:
    response = await post(make_kernel({"solo": {"model": "scripted/echo"}}, plugins=[scripted]), {"prompt": "hi"})
    assert response.status_code == 200 and response.json()["model"] == "solo"


async def test_model_omitted_is_server_default_agent() -> None:
    kernel = make_kernel(TWO, plugins=[scripted], server={"metrics_port": None, "default_agent": "helper"})
    response = await post(kernel, {"prompt": "hi"})
    assert response.status_code == 200 and response.json()["model"] == "helper"


async def test_model_omitted_with_several_agents_and_no_default_lists_them() -> None:
    response = await post(make_kernel(TWO, plugins=[scripted]), {"prompt": "hi"})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "model"
    assert "bot, helper" in error["message"] and "server.default_agent" in error["message"]


async def test_a_default_agent_that_does_not_exist_says_so() -> None:
    kernel = make_kernel(TWO, plugins=[scripted], server={"metrics_port": None, "default_agent": "gone"})
    response = await post(kernel, {"prompt": "hi"})
    error = response.json()["error"]
    assert response.status_code == 404 and "server.default_agent" in error["message"] and "bot, helper" in error["message"]


async def test_parameters_reach_the_model() -> None:
    recorder = HookRecorder()
    kernel = make_kernel({"bot": {"model": "scripted/echo"}}, plugins=[scripted], recorder=recorder)
    body = {"prompt": "hi", "max_tokens": 7, "temperature": 0.2, "stop": ["\n"], "top_p": 0.9, "user": "u1", "n": 1, "echo": False}
    assert (await post(kernel, body)).status_code == 200
    call = recorder.of("before_llm_call")[0].kwargs["call"]
    assert {k: call.params[k] for k in ("max_tokens", "temperature", "stop", "top_p", "user")} == {
        "max_tokens": 7, "temperature": 0.2, "stop": ["\n"], "top_p": 0.9, "user": "u1",
    }


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"echo": True}, "echo", "echo is not supported"),
        ({"n": 2}, "n", "n=1"),
        ({"best_of": 3}, "best_of", "best_of=1"),
        ({"suffix": "end"}, "suffix", "suffix"),
        ({"logprobs": 2}, "logprobs", "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "logit_bias"),
        ({"prompt": ["a", "b"]}, "prompt", "one request per prompt"),
        ({"prompt": [1, 2, 3]}, "prompt", "token ids"),
        ({"prompt": None}, "prompt", "prompt is required"),
        ({"prompt": {"text": "x"}}, "prompt", "must be a string"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when stream"),
        ({"max_tokens": "many"}, "max_tokens", "Expected `int | null`"),
    ],
)
async def test_what_cannot_be_honoured_is_a_clear_400(extra: dict[str, Any], param: str, words: str) -> None:
    response = await post(make_kernel(TWO, plugins=[scripted]), {"model": "bot", "prompt": "hi", **extra})
    error = response.json()["error"]
    assert response.status_code == 400, error
    assert error["param"] == param and words in error["message"], error


async def test_streamed_in_the_legacy_chunk_shape() -> None:
    response = await post(make_kernel(TWO, plugins=[scripted]), {"model": "bot", "prompt": "stream me", "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    chunks = events(response.text)
    assert chunks[-1] == "[DONE]"
    data = chunks[:-1]
    assert all(c["object"] == "text_completion" and c["id"] == data[0]["id"] and c["id"].startswith("cmpl-") for c in data)
    assert "".join(c["choices"][0]["text"] for c in data) == "You said: stream me"
    assert [c["choices"][0]["finish_reason"] for c in data][-1] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in data[:-1])
    assert "usage" in data[-1] and all("usage" not in c for c in data[:-1])


async def test_streamed_with_include_usage_ends_with_a_usage_chunk() -> None:
    body = {"model": "bot", "prompt": "x", "stream": True, "stream_options": {"include_usage": True}}
    chunks = events((await post(make_kernel(TWO, plugins=[scripted]), body)).text)
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["total_tokens"] > 0
    assert "usage" not in chunks[-3] and chunks[-3]["choices"][0]["finish_reason"] == "stop"


# -- the official client, over a real socket ---------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    kernel = make_kernel(TWO, plugins=[scripted], server={"metrics_port": None, "default_agent": "bot"})
    with LiveServer(kernel) as server:
        yield server.url


@pytest.fixture
def client(served: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served}/v1", api_key="unused", max_retries=0)


def test_openai_client_completions_create(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="helper", prompt="Say hi", max_tokens=50, temperature=0)
    assert completion.object == "text_completion" and completion.model == "helper"
    assert completion.choices[0].text == "You said: Say hi" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_client_completions_create_streamed(client: openai.OpenAI) -> None:
    stream = client.completions.create(model="bot", prompt="Say hi", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "You said: Say hi"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_openai_client_model_left_empty_uses_the_default_agent(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="", prompt="who answers?")
    assert completion.model == "bot"


def test_openai_client_refusals_are_bad_request_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="echo is not supported"):
        client.completions.create(model="bot", prompt="x", echo=True)
    with pytest.raises(openai.NotFoundError, match="no agent named 'nobody'"):
        client.completions.create(model="nobody", prompt="x")

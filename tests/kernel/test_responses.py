"""``POST /v1/responses`` and ``/{agent}/responses``, ``GET``/``DELETE`` of stored
responses: the official ``openai`` client against a served kernel, on the scripted model
(offline) and on the openai plugin against FakeOpenAI (usage checked against the
upstream's figures)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest

import robutler_plugin_memory
import robutler_plugin_openai
import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.config import config_from_dict
from robutler_kernel.state_store import MemoryStateStore
from robutler_kernel.testing import FakeOpenAI, HookRecorder, LiveServer, kernel_client, make_kernel
from robutler_specs import (
    ChatCompletionChunk,
    Identity,
    RequestContext,
    Skill,
    Unauthorized,
    hookimpl,
    tool,
)

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
WEATHER = {
    "type": "function",
    "name": "lookup_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class Who(Skill):
    """A stand-in auth skill: ``X-User`` is the caller's user_id; ``X-User: reject`` is a 401."""

    name = "who"
    priority = 5

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        user = ctx.headers.get("x-user")
        if user == "reject":
            raise Unauthorized("who are you? (test)")
        if user:
            ctx.identity = Identity(user_id=user)


class Breaks(Skill):
    """Raises in ``on_chunk`` once the text says ``boom`` (a stream that breaks midway)."""

    name = "breaks"

    @hookimpl
    def on_chunk(self, ctx: RequestContext, chunk: ChatCompletionChunk) -> None:
        if any("boom" in (c.delta.content or "") for c in chunk.choices):
            raise RuntimeError("the stream broke (test)")


AGENTS: dict[str, Any] = {
    "assistant": {
        "model": "scripted/echo",
        "instructions": "Be kind.",
        "tools": ["tests.kernel.sample_tools:get_weather"],
        "skills": {"who": None, "breaks": None},
    },
    "other": {"model": "scripted/echo", "skills": {"who": None}},
}
PLUGINS = [scripted, Who, Breaks]


def kernel(recorder: HookRecorder | None = None, **server: Any) -> Kernel:
    return make_kernel(AGENTS, plugins=PLUGINS, server={"metrics_port": None, **server}, recorder=recorder)


@asynccontextmanager
async def client(k: Kernel | None = None, base: str = "/v1", **headers: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with kernel_client(k or kernel()) as http:
        yield openai.AsyncOpenAI(base_url=f"http://kernel{base}", api_key="unused", http_client=http,
                                 max_retries=0, default_headers=headers or None)


# -- input, instructions, output -------------------------------------------------------


async def test_a_string_input_answers_with_a_response_and_chat_usage() -> None:
    k = kernel()
    async with client(k) as c:
        response = await c.responses.create(model="assistant", input="Hello there")
        chat = await c.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "Hello there"}])
    assert response.output_text == "You said: Hello there" == chat.choices[0].message.content
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    assert response.model == "assistant"
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert response.usage is not None and chat.usage is not None
    assert response.usage.input_tokens == chat.usage.prompt_tokens
    assert response.usage.output_tokens == chat.usage.completion_tokens
    assert response.usage.total_tokens == chat.usage.total_tokens
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0


async def test_item_input_and_instructions_reach_the_model() -> None:
    recorder = HookRecorder()
    async with client(kernel(recorder)) as c:
        response = await c.responses.create(
            model="assistant",
            instructions="Answer in French.",
            input=[
                {"role": "user", "content": "first"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "second "},
                                             {"type": "input_text", "text": "part"}]},
            ],
        )
    assert response.output_text == "You said: second part"
    assert response.instructions == "Answer in French."
    [call] = [c.kwargs["call"] for c in recorder.of("before_llm_call")]
    sent = [(m.role, m.content) for m in call.messages]
    assert sent == [
        ("system", "Be kind."),  # the agent's own prompt first
        ("system", "Answer in French."),
        ("user", "first"),
        ("assistant", "ok"),
        ("user", [{"type": "text", "text": "second "}, {"type": "text", "text": "part"}]),
    ]


async def test_the_agents_own_tool_runs_inside() -> None:
    async with client() as c:
        response = await c.responses.create(model="assistant", input="call get_weather city=Paris")
    assert response.output_text == "Tool get_weather returned: Sunny in Paris"
    assert [item.type for item in response.output] == ["message"]


async def test_per_agent_route_and_model_echoed() -> None:
    async with client(base="/assistant") as c:
        response = await c.responses.create(model="assistant", input="hi")
    assert response.output_text == "You said: hi" and response.model == "assistant"


# -- client function tools -------------------------------------------------------------


async def test_a_client_tool_call_is_returned_then_continued_with_previous_response_id() -> None:
    async with client() as c:
        first = await c.responses.create(model="assistant", input="call lookup_weather city=Oslo", tools=[WEATHER])
        [call] = first.output
        assert call.type == "function_call" and call.name == "lookup_weather" and call.id.startswith("fc_")
        assert json.loads(call.arguments) == {"city": "Oslo"} and call.status == "completed"
        second = await c.responses.create(
            model="assistant", tools=[WEATHER], previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "snow"}],
        )
    assert second.output_text == "Tool lookup_weather returned: snow"
    assert second.previous_response_id == first.id


async def test_a_client_tool_call_continued_with_the_full_input() -> None:
    async with client() as c:
        asked = [{"role": "user", "content": "call lookup_weather city=Oslo"}]
        first = await c.responses.create(model="assistant", input=asked, tools=[WEATHER], store=False)
        assert first.store is False
        call = first.output[0]
        # The SDK's own output objects sent back as input, as the Agents SDK does.
        follow_up = [*asked, *first.output, {"type": "function_call_output", "call_id": call.call_id, "output": "rain"}]
        second = await c.responses.create(model="assistant", input=follow_up, tools=[WEATHER])
        assert second.output_text == "Tool lookup_weather returned: rain"
        with pytest.raises(openai.NotFoundError):  # store=false: nothing to continue
            await c.responses.create(model="assistant", input="again", previous_response_id=first.id)


async def test_an_item_reference_is_the_stored_responses_item() -> None:
    """What the Vercel AI SDK sends by default (``store`` on): the model's earlier text as
    ``{"type": "item_reference", "id": "msg_..."}``, in a later turn or the next step of a
    tool loop; the model sees that text in its place."""
    recorder = HookRecorder()
    k = kernel(recorder)
    async with client(k, **{"X-User": "alice"}) as c:
        first = await c.responses.create(model="assistant", input="hello")
        async with c.responses.stream(model="assistant", input="again") as stream:
            streamed = await stream.get_final_response()
        references = [{"type": "item_reference", "id": r.output[0].id} for r in (first, streamed)]
        answer = await c.responses.create(model="assistant", input=[
            {"role": "user", "content": "hello"}, references[0],
            {"role": "user", "content": "again"}, references[1], {"role": "user", "content": "and?"}])
        assert answer.output_text == "You said: and?"
        continued = await c.responses.create(model="assistant", previous_response_id=answer.id, input="more")
    assert continued.output_text == "You said: more"
    sent = [(m.role, m.content) for m in recorder.of("before_llm_call")[-1].kwargs["call"].messages]
    assert sent[1:] == [
        ("user", "hello"), ("assistant", "You said: hello"), ("user", "again"), ("assistant", "You said: again"),
        ("user", "and?"), ("assistant", "You said: and?"), ("user", "more"),
    ]


async def test_an_item_reference_is_only_the_callers() -> None:
    k = kernel()
    async with kernel_client(k) as http:
        made = (await http.post("/v1/responses", json={"model": "assistant", "input": "secret"},
                                headers={"x-user": "alice"})).json()
        item_id = made["output"][0]["id"]
        for who, ref in (({"x-user": "bob"}, item_id), ({"x-user": "alice"}, "msg_nope"),
                         ({"x-user": "alice"}, item_id.replace("_0", "_7"))):
            answer = await http.post("/v1/responses", headers=who, json={
                "model": "assistant", "input": [{"role": "user", "content": "hi"}, {"type": "item_reference", "id": ref}]})
            assert answer.status_code == 404, (who, ref)
            assert answer.json()["error"] == {"message": f"Item with id {ref!r} not found.", "type": "invalid_request_error",
                                              "param": "input[1].id", "code": "item_not_found"}
        refused = await http.post("/v1/responses", headers={"x-user": "reject"}, json={
            "model": "assistant", "input": [{"type": "item_reference", "id": "msg_nope"}]})
        assert refused.status_code == 401  # auth first, as for previous_response_id


async def test_a_client_tool_may_not_shadow_an_agent_tool() -> None:
    async with client() as c:
        with pytest.raises(openai.BadRequestError) as caught:
            await c.responses.create(model="assistant", input="hi", tools=[{**WEATHER, "name": "get_weather"}])
    assert caught.value.body["param"] == "tools"  # type: ignore[index]


# -- structured output -----------------------------------------------------------------


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
          "additionalProperties": False}


async def test_text_format_json_schema_is_the_models_response_format() -> None:
    recorder = HookRecorder()
    text = {"format": {"type": "json_schema", "name": "person", "schema": SCHEMA, "strict": True}}
    async with client(kernel(recorder)) as c:
        response = await c.responses.create(model="assistant", input="hi", text=text)  # type: ignore[arg-type]
    [call] = [c.kwargs["call"] for c in recorder.of("before_llm_call")]
    assert call.params["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"


# -- stored responses: GET, DELETE, owners, expiry --------------------------------------


async def test_get_and_delete_a_stored_response() -> None:
    k = kernel()
    async with client(k, **{"X-User": "alice"}) as c:
        made = await c.responses.create(model="assistant", input="remember me")
        got = await c.responses.retrieve(made.id)
        assert got.id == made.id and got.output_text == "You said: remember me"
        assert got.usage is not None and made.usage is not None and got.usage.total_tokens == made.usage.total_tokens
        await c.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError) as caught:
            await c.responses.retrieve(made.id)
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "message": f"Response with id '{made.id}' not found.", "type": "invalid_request_error",
        "param": None, "code": "response_not_found"}


async def test_per_agent_get_and_delete() -> None:
    k = kernel()
    async with kernel_client(k) as http:
        made = (await http.post("/assistant/responses", json={"input": "hi"})).json()
        got = await http.get(f"/assistant/responses/{made['id']}")
        assert got.status_code == 200 and got.json()["id"] == made["id"]
        assert got.headers["x-request-id"].startswith("req_")
        # Another agent's route does not serve it.
        assert (await http.get(f"/other/responses/{made['id']}")).status_code == 404
        deleted = await http.delete(f"/assistant/responses/{made['id']}")
        assert deleted.json() == {"id": made["id"], "object": "response.deleted", "deleted": True}
        assert (await http.delete(f"/assistant/responses/{made['id']}")).status_code == 404


async def test_only_the_same_identity_reads_deletes_or_continues() -> None:
    k = kernel()
    async with kernel_client(k) as http:
        alice, bob = {"x-user": "alice"}, {"x-user": "bob"}
        made = (await http.post("/v1/responses", json={"model": "assistant", "input": "secret"}, headers=alice)).json()
        rid = made["id"]
        for method in ("GET", "DELETE"):
            for who in (bob, {}):
                answer = await http.request(method, f"/v1/responses/{rid}", headers=who)
                assert answer.status_code == 404, (method, who)
                assert answer.json()["error"]["message"] == f"Response with id '{rid}' not found."
        # Auth runs first: a caller it refuses gets its 401, not a 404.
        refused = await http.get(f"/v1/responses/{rid}", headers={"x-user": "reject"})
        assert refused.status_code == 401
        stolen = await http.post("/v1/responses", headers=bob,
                                 json={"model": "assistant", "input": "more", "previous_response_id": rid})
        assert stolen.status_code == 404
        assert stolen.json()["error"] == {"message": f"Previous response with id '{rid}' not found.",
                                          "type": "invalid_request_error", "param": "previous_response_id",
                                          "code": "previous_response_not_found"}
        assert (await http.get(f"/v1/responses/{rid}", headers=alice)).status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_stored_responses_expire_after_server_responses_ttl() -> None:
    k = kernel(responses_ttl=60)
    clock = Clock()
    k.state_store = MemoryStateStore(clock)
    async with client(k) as c:
        made = await c.responses.create(model="assistant", input="short lived")
        clock.now = 59
        assert (await c.responses.retrieve(made.id)).id == made.id
        clock.now = 60
        with pytest.raises(openai.NotFoundError):
            await c.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            await c.responses.create(model="assistant", input="again", previous_response_id=made.id)


def redis_kernel(prefix: str) -> Kernel:
    config = config_from_dict({
        "server": {"metrics_port": None, "responses_ttl": 120},
        "agents": AGENTS,
        "plugins": {"memory": {"redis_url": REDIS_URL, "key_prefix": prefix}},
    })
    return Kernel(config, plugins=[*PLUGINS, robutler_plugin_memory], discover=False)


async def test_previous_response_id_across_two_kernels_sharing_redis() -> None:
    import redis.asyncio as aioredis

    prefix = f"robutler:test:{uuid.uuid4().hex}:"
    one, two = redis_kernel(prefix), redis_kernel(prefix)
    async with client(one) as a, client(two) as b:
        first = await a.responses.create(model="assistant", input="call lookup_weather city=Rome", tools=[WEATHER])
        call = first.output[0]
        second = await b.responses.create(
            model="assistant", tools=[WEATHER], previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "hot"}],
        )
        assert second.output_text == "Tool lookup_weather returned: hot"
        third = await a.responses.create(model="assistant", input="and now?", previous_response_id=second.id)
        assert third.output_text == "You said: and now?"
        # The whole chain reached the model: both earlier turns and this one.
        assert third.usage is not None and second.usage is not None
        assert third.usage.input_tokens > second.usage.input_tokens
        assert (await b.responses.retrieve(third.id)).id == third.id
        redis = aioredis.from_url(REDIS_URL)
        try:
            ttl = await redis.pttl(f"{prefix}responses:{third.id}")
            assert 110_000 < ttl <= 120_000  # server.responses_ttl
            await b.responses.delete(third.id)
            assert await redis.exists(f"{prefix}responses:{third.id}") == 0
            await redis.delete(*[key async for key in redis.scan_iter(f"{prefix}*")])
        finally:
            await redis.aclose()


# -- streaming -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    with LiveServer(kernel()) as server:
        yield server.url


TEXT_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    *["response.output_text.delta"] * 3,  # "You said: hi" is three words
    "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
]


def test_streamed_text_events_in_their_documented_order(live: str) -> None:
    c = openai.OpenAI(base_url=f"{live}/v1", api_key="unused", max_retries=0)
    events = list(c.responses.create(model="assistant", input="hi", stream=True))
    assert [e.type for e in events] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "You said: hi"
    final = events[-1].response
    assert final.output_text == "You said: hi" and final.usage is not None and final.usage.total_tokens > 0
    assert events[0].response.id == final.id and events[0].response.status == "in_progress"
    with c.responses.stream(model="assistant", input="hi") as stream:
        helper = [e.type for e in stream]
        done = stream.get_final_response()
    assert helper == TEXT_EVENTS and done.output_text == "You said: hi"
    assert c.responses.retrieve(done.id).output_text == "You said: hi"  # stored before completed was sent


def test_a_streamed_function_call(live: str) -> None:
    c = openai.OpenAI(base_url=f"{live}/assistant", api_key="unused", max_retries=0)
    with c.responses.stream(model="assistant", input="call lookup_weather city=Oslo", tools=[WEATHER]) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert types == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]
    [call] = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    follow = c.responses.create(model="assistant", previous_response_id=final.id, tools=[WEATHER],
                                input=[{"type": "function_call_output", "call_id": call.call_id, "output": "fog"}])
    assert follow.output_text == "Tool lookup_weather returned: fog"


def test_responses_sse_framing_has_event_lines_and_no_done(live: str) -> None:
    with httpx.Client(base_url=live, timeout=10) as http:
        answer = http.post("/v1/responses", json={"model": "assistant", "input": "hi", "stream": True})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["x-request-id"].startswith("resp_")
    blocks = answer.text.strip().split("\n\n")
    for block in blocks:
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data[6:])["type"] == event[7:]
    assert "[DONE]" not in answer.text


def test_a_stream_that_breaks_ends_with_error_then_response_failed(live: str) -> None:
    c = openai.OpenAI(base_url=f"{live}/v1", api_key="unused", max_retries=0)
    events = list(c.responses.create(model="assistant", input="boom now", stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    error, failed = events[-2], events[-1]
    assert error.code == "hook_failed" and "plugin 'breaks'" in error.message
    assert failed.response.status == "failed" and failed.response.error is not None


def test_a_refusal_before_the_stream_is_a_json_error(live: str) -> None:
    with httpx.Client(base_url=live, timeout=10) as http:
        answer = http.post("/v1/responses", json={"model": "assistant", "input": "hi", "stream": True},
                           headers={"x-user": "reject"})
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"


# -- one lifecycle ----------------------------------------------------------------------


async def test_every_responses_door_opens_then_finalizes_once() -> None:
    recorder = HookRecorder()
    k = kernel(recorder)
    async with kernel_client(k) as http:
        made = (await http.post("/v1/responses", json={"model": "assistant", "input": "hi"})).json()
        await http.post("/assistant/responses", json={"input": "hi", "stream": True})
        await http.get(f"/v1/responses/{made['id']}")
        await http.delete(f"/assistant/responses/{made['id']}")
    lifecycle = [n for n in recorder.names() if n in ("on_connection", "finalize_connection")]
    assert lifecycle == ["on_connection", "finalize_connection"] * 4
    ids = [call.kwargs["ctx"].request_id for call in recorder.of("on_connection")]
    assert ids[0] == made["id"] and ids[1].startswith("resp_") and ids[2].startswith("req_")


class Slow(Skill):
    """A slow tool, for ``server.request_timeout``."""

    name = "slow"

    @tool
    async def nap(self, seconds: float) -> str:
        """Sleep a while.

        Args:
            seconds: how long
        """
        await asyncio.sleep(seconds)
        return "rested"


def test_request_timeout_before_and_during_the_stream() -> None:
    recorder = HookRecorder()
    agents = {"sleepy": {"model": "scripted/echo", "skills": {"slow": None, "scripted": {"chunk_delay": 0.05}}}}
    k = make_kernel(agents, plugins=[scripted, Slow], server={"metrics_port": None, "request_timeout": 1.0},
                    recorder=recorder)
    with LiveServer(k) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        answer = http.post("/sleepy/responses", json={"input": "call nap seconds=30"})
        assert answer.status_code == 504 and answer.json()["error"]["code"] == "provider_timeout"
        c = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        events = list(c.responses.create(model="sleepy", input=" ".join(["word"] * 40), stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-2].code == "provider_timeout" and "server.request_timeout" in events[-2].message
    finals = [type(call.kwargs["error"]).__name__ for call in recorder.of("finalize_connection")]
    assert finals == ["ProviderTimeout", "ProviderTimeout"]  # once per request


# -- errors ----------------------------------------------------------------------------


async def test_an_unknown_agent_is_a_404_model_not_found() -> None:
    async with client() as c:
        with pytest.raises(openai.NotFoundError) as caught:
            await c.responses.create(model="nobody", input="hi")
    body: Any = caught.value.body
    assert body["code"] == "model_not_found" and body["type"] == "invalid_request_error"
    assert body["param"] == "model" and "nobody" in body["message"]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "assistant", "input": 5}, "input"),
    ({"model": "assistant"}, "input"),
    ({"input": "hi"}, "model"),
    ({"model": "assistant", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "assistant", "input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
     "input[0].call_id"),
    ({"model": "assistant", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "assistant", "input": [{"type": "item_reference"}]}, "input[0].id"),
    ({"model": "assistant", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema"),
    ({"model": "assistant", "input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "assistant", "input": "hi", "background": True}, "background"),
    ({"model": "assistant", "input": "hi", "temperature": "hot"}, "temperature"),
])
async def test_bad_input_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    async with kernel_client(kernel()) as http:
        answer = await http.post("/v1/responses", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    assert param.split("[")[0].split(".")[0] in error["message"]


async def test_an_unknown_previous_response_is_a_404() -> None:
    async with kernel_client(kernel()) as http:
        answer = await http.post("/v1/responses", json={"model": "assistant", "input": "hi",
                                                        "previous_response_id": "resp_nope"})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "previous_response_not_found"
        assert (await http.get("/v1/responses/resp_nope")).status_code == 404
        assert (await http.put("/v1/responses/resp_nope")).status_code == 405


# -- the openai plugin: usage as the upstream reported it --------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def openai_kernel(fake: FakeOpenAI) -> Kernel:
    skill = {"api_key": "k", "base_url": fake.base_url, "timeout": 5}
    return make_kernel({"gpt": {"model": "openai/gpt-x", "skills": {"openai": skill}}},
                       plugins=[robutler_plugin_openai])


UPSTREAM_USAGE = {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38,
                  "prompt_tokens_details": {"cached_tokens": 12}}


async def test_usage_is_the_upstreams_exactly(fake: FakeOpenAI) -> None:
    fake.reset()
    fake.add_reply("Hi from upstream", usage=UPSTREAM_USAGE)
    text = {"format": {"type": "json_schema", "name": "person", "schema": SCHEMA}}
    async with client(openai_kernel(fake)) as c:
        response = await c.responses.create(model="gpt", input="hi", text=text, max_output_tokens=40)  # type: ignore[arg-type]
    assert response.output_text == "Hi from upstream"
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (31, 7, 38)
    assert usage.input_tokens_details.cached_tokens == 12
    sent = fake.requests[-1].json
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    assert sent["max_completion_tokens"] == 40


def test_streamed_usage_is_the_upstreams_exactly(fake: FakeOpenAI) -> None:
    fake.reset()
    fake.add_reply("Streamed from upstream", usage=UPSTREAM_USAGE)
    with LiveServer(openai_kernel(fake)) as server:
        c = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        with c.responses.stream(model="gpt", input="hi") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
    assert "".join(deltas) == "Streamed from upstream" == final.output_text
    usage = final.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (31, 7, 38)
    assert usage.input_tokens_details.cached_tokens == 12

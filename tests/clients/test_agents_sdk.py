"""The OpenAI Agents SDK (``openai-agents``) with its default Responses model and with its
chat-completions model, on an ``AsyncOpenAI`` client pointed at the served agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)

from tests.clients import scenarios as s

pytestmark = pytest.mark.clients

set_tracing_disabled(True)


@function_tool
def get_local_time(tz: str) -> str:
    """The local time in a time zone (runs on the client).

    Args:
        tz: an IANA time zone
    """
    return s.get_local_time(tz)


def responses_model(agent: str, base_url: str) -> Model:
    return OpenAIResponsesModel(agent, openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0))


def chat_model(agent: str, base_url: str) -> Model:
    return OpenAIChatCompletionsModel(agent, openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0))


@pytest.fixture(params=["responses", "chat"])
def model(request: pytest.FixtureRequest, agent: str, base_url: str) -> Model:
    """Each test runs on both of the SDK's OpenAI models."""
    factory: Callable[[str, str], Model] = responses_model if request.param == "responses" else chat_model
    return factory(agent, base_url)


def usage_of(result: Any) -> dict[str, int]:
    usage = result.context_wrapper.usage
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens, "total_tokens": usage.total_tokens}


async def test_client_tool_round_trip(model: Model, fake: Any) -> None:
    s.script_client_tool(fake)
    bot = Agent(name="client", model=model, tools=[get_local_time])
    result = await Runner.run(bot, "What time is it in UTC?")
    assert result.final_output == s.CLIENT_ANSWER
    assert usage_of(result) == s.TOTAL_TWO_CALLS and result.context_wrapper.usage.requests == 2
    s.assert_client_result_reached_upstream(fake)


async def test_client_tool_round_trip_streamed(model: Model, fake: Any) -> None:
    s.script_client_tool(fake)
    bot = Agent(name="client", model=model, tools=[get_local_time])
    result = Runner.run_streamed(bot, "What time is it in UTC?")
    async for _ in result.stream_events():
        pass
    assert result.final_output == s.CLIENT_ANSWER
    assert usage_of(result) == s.TOTAL_TWO_CALLS
    s.assert_client_result_reached_upstream(fake)


async def test_server_tool(model: Model, fake: Any) -> None:
    s.script_server_tool(fake)
    bot = Agent(name="client", model=model)
    result = await Runner.run(bot, "Weather in Oslo?")
    assert result.final_output == s.SERVER_ANSWER
    assert usage_of(result) == s.TOTAL_TWO_CALLS and result.context_wrapper.usage.requests == 1
    s.assert_server_tool_ran(fake)


async def test_server_tool_streamed(model: Model, fake: Any) -> None:
    s.script_server_tool(fake)
    bot = Agent(name="client", model=model)
    result = Runner.run_streamed(bot, "Weather in Oslo?")
    async for _ in result.stream_events():
        pass
    assert result.final_output == s.SERVER_ANSWER
    assert usage_of(result) == s.TOTAL_TWO_CALLS, "streamed usage must be counted once"
    s.assert_server_tool_ran(fake)


async def test_mixed_turn(model: Model, fake: Any) -> None:
    s.script_mixed(fake)
    bot = Agent(name="client", model=model, tools=[get_local_time])
    result = await Runner.run(bot, "Weather in Oslo, and the time in UTC?")
    assert result.final_output == s.MIXED_ANSWER
    assert usage_of(result) == s.TOTAL_TWO_CALLS
    s.assert_mixed_turn_seen(fake)


async def test_mixed_turn_streamed(model: Model, fake: Any) -> None:
    s.script_mixed(fake)
    bot = Agent(name="client", model=model, tools=[get_local_time])
    result = Runner.run_streamed(bot, "Weather in Oslo, and the time in UTC?")
    async for _ in result.stream_events():
        pass
    assert result.final_output == s.MIXED_ANSWER
    s.assert_mixed_turn_seen(fake)


async def test_structured_output(model: Model, fake: Any) -> None:
    s.script_structured(fake)
    bot = Agent(name="client", model=model, output_type=s.City)
    result = await Runner.run(bot, "The largest city of Norway?")
    assert result.final_output == s.CITY
    assert usage_of(result) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_schema_reached_upstream(fake)

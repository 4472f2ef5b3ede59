"""pydantic-ai with its OpenAI chat model (``OpenAIChatModel``) on an ``OpenAIProvider``
whose ``base_url`` is the served agent's ``/v1``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.clients import scenarios as s

pytestmark = pytest.mark.clients


@pytest.fixture
def model(agent: str, base_url: str) -> OpenAIChatModel:
    return OpenAIChatModel(agent, provider=OpenAIProvider(base_url=base_url, api_key="unused"))


def with_client_tool(model: OpenAIChatModel) -> Agent[None, str]:
    bot = Agent(model)

    @bot.tool_plain
    def get_local_time(tz: str) -> str:
        """The local time in a time zone (runs on the client).

        Args:
            tz: an IANA time zone
        """
        return s.get_local_time(tz)

    return bot


def usage_of(usage: Any) -> dict[str, int]:
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens, "total_tokens": usage.total_tokens}


async def test_client_tool_round_trip(model: OpenAIChatModel, fake: Any) -> None:
    s.script_client_tool(fake)
    result = await with_client_tool(model).run("What time is it in UTC?")
    assert result.output == s.CLIENT_ANSWER
    assert usage_of(result.usage) == s.TOTAL_TWO_CALLS and result.usage.requests == 2
    s.assert_client_result_reached_upstream(fake)


async def test_client_tool_round_trip_streamed(model: OpenAIChatModel, fake: Any) -> None:
    s.script_client_tool(fake)
    async with with_client_tool(model).run_stream("What time is it in UTC?") as result:
        output = await result.get_output()
    assert output == s.CLIENT_ANSWER
    assert usage_of(result.usage) == s.TOTAL_TWO_CALLS, "streamed usage must be counted once"
    s.assert_client_result_reached_upstream(fake)


async def test_server_tool(model: OpenAIChatModel, fake: Any) -> None:
    s.script_server_tool(fake)
    result = await Agent(model).run("Weather in Oslo?")
    assert result.output == s.SERVER_ANSWER
    assert usage_of(result.usage) == s.TOTAL_TWO_CALLS and result.usage.requests == 1
    s.assert_server_tool_ran(fake)


async def test_server_tool_streamed(model: OpenAIChatModel, fake: Any) -> None:
    s.script_server_tool(fake)
    async with Agent(model).run_stream("Weather in Oslo?") as result:
        text = "".join([delta async for delta in result.stream_text(delta=True)])
    assert text == s.SERVER_ANSWER
    assert usage_of(result.usage) == s.TOTAL_TWO_CALLS, "streamed usage must be counted once"
    assert fake.requests[0].json["stream"] is True
    s.assert_server_tool_ran(fake)


async def test_mixed_turn(model: OpenAIChatModel, fake: Any) -> None:
    s.script_mixed(fake)
    result = await with_client_tool(model).run("Weather in Oslo, and the time in UTC?")
    assert result.output == s.MIXED_ANSWER
    assert usage_of(result.usage) == s.TOTAL_TWO_CALLS
    s.assert_mixed_turn_seen(fake)


async def test_structured_output_native(model: OpenAIChatModel, fake: Any) -> None:
    """``NativeOutput``: the schema travels as ``response_format`` (json_schema)."""
    s.script_structured(fake)
    result = await Agent(model, output_type=NativeOutput(s.City)).run("The largest city of Norway?")
    assert result.output == s.CITY
    assert usage_of(result.usage) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_schema_reached_upstream(fake)


async def test_structured_output_as_a_tool(model: OpenAIChatModel, fake: Any) -> None:
    """pydantic-ai's default: the output is a ``final_result`` tool the client defines, so to
    the server it is a client tool; the client ends the run on its call."""
    fake.add_reply(tool_calls=[{"name": "final_result", "arguments": s.CITY_JSON}], usage=s.USAGE_ANSWER)
    result = await Agent(model, output_type=s.City).run("The largest city of Norway?")
    assert result.output == s.CITY
    assert "final_result" in s.offered_tools(fake)


# -- pydantic-ai's OpenAIResponsesModel ------------------------------------------------------


@pytest.fixture
def responses_model(agent: str, base_url: str) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(agent, provider=OpenAIProvider(base_url=base_url, api_key="unused"))


async def test_responses_client_tool_round_trip(responses_model: OpenAIResponsesModel, fake: Any) -> None:
    s.script_client_tool(fake)
    bot = Agent(responses_model)

    @bot.tool_plain
    def get_local_time(tz: str) -> str:
        """The local time in a time zone (runs on the client)."""
        return s.get_local_time(tz)

    result = await bot.run("What time is it in UTC?")
    assert result.output == s.CLIENT_ANSWER
    assert usage_of(result.usage) == s.TOTAL_TWO_CALLS
    s.assert_client_result_reached_upstream(fake)


async def test_responses_server_tool_streamed(responses_model: OpenAIResponsesModel, fake: Any) -> None:
    s.script_server_tool(fake)
    async with Agent(responses_model).run_stream("Weather in Oslo?") as result:
        output = await result.get_output()
    assert output == s.SERVER_ANSWER
    assert usage_of(result.usage) == s.TOTAL_TWO_CALLS
    s.assert_server_tool_ran(fake)


async def test_responses_structured_output(responses_model: OpenAIResponsesModel, fake: Any) -> None:
    s.script_structured(fake)
    result = await Agent(responses_model, output_type=NativeOutput(s.City)).run("The largest city of Norway?")
    assert result.output == s.CITY
    s.assert_schema_reached_upstream(fake)

"""LangChain's ``ChatOpenAI`` (``langchain-openai``) with ``base_url`` at the served agent."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.clients import scenarios as s

pytestmark = pytest.mark.clients


@tool
def get_local_time(tz: str) -> str:
    """The local time in a time zone (runs on the client).

    Args:
        tz: an IANA time zone
    """
    return s.get_local_time(tz)


@pytest.fixture
def llm(agent: str, base_url: str) -> ChatOpenAI:
    return ChatOpenAI(model=agent, base_url=base_url, api_key="unused", max_retries=0)  # type: ignore[arg-type]


def usage_of(message: Any) -> dict[str, int]:
    usage = message.usage_metadata
    assert usage is not None, f"no usage_metadata on {message!r}"
    return {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"], "total_tokens": usage["total_tokens"]}


def run_client_tools(history: list[BaseMessage], ai: AIMessage) -> None:
    """Append the model's message and the client's results for its calls of the client's tool."""
    history.append(ai)
    for call in ai.tool_calls:
        if call["name"] == "get_local_time":
            history.append(get_local_time.invoke(call))


def test_client_tool_round_trip(llm: ChatOpenAI, fake: Any) -> None:
    s.script_client_tool(fake)
    bound = llm.bind_tools([get_local_time])
    history: list[BaseMessage] = [HumanMessage("What time is it in UTC?")]
    first = bound.invoke(history)
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [("get_local_time", {"tz": "UTC"}, s.CLIENT_CALL_ID)]
    assert usage_of(first) == {**s.USAGE_TOOL_ROUND, "total_tokens": 18}
    run_client_tools(history, first)
    final = bound.invoke(history)
    assert final.content == s.CLIENT_ANSWER
    assert usage_of(final) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_client_result_reached_upstream(fake)


def test_client_tool_round_trip_streamed(agent: str, base_url: str, fake: Any) -> None:
    s.script_client_tool(fake)
    llm = ChatOpenAI(model=agent, base_url=base_url, api_key="unused", max_retries=0, stream_usage=True)  # type: ignore[arg-type]
    bound = llm.bind_tools([get_local_time])
    history: list[BaseMessage] = [HumanMessage("What time is it in UTC?")]
    first = reduce(operator.add, bound.stream(history))
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [("get_local_time", {"tz": "UTC"})]
    assert usage_of(first) == {**s.USAGE_TOOL_ROUND, "total_tokens": 18}
    run_client_tools(history, first)
    final = reduce(operator.add, bound.stream(history))
    assert final.content == s.CLIENT_ANSWER
    assert usage_of(final) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_client_result_reached_upstream(fake)


def test_server_tool(llm: ChatOpenAI, fake: Any) -> None:
    s.script_server_tool(fake)
    reply = llm.invoke("Weather in Oslo?")
    assert reply.content == s.SERVER_ANSWER and not reply.tool_calls
    assert usage_of(reply) == s.TOTAL_TWO_CALLS
    s.assert_server_tool_ran(fake)


def test_server_tool_streamed_usage_once(agent: str, base_url: str, fake: Any) -> None:
    s.script_server_tool(fake)
    llm = ChatOpenAI(model=agent, base_url=base_url, api_key="unused", max_retries=0, stream_usage=True)  # type: ignore[arg-type]
    chunks = list(llm.stream("Weather in Oslo?"))
    whole = reduce(operator.add, chunks)
    assert whole.content == s.SERVER_ANSWER
    assert usage_of(whole) == s.TOTAL_TWO_CALLS, "streamed usage must be counted once"
    assert fake.requests[0].json["stream"] is True
    s.assert_server_tool_ran(fake)


async def test_server_tool_astream(agent: str, base_url: str, fake: Any) -> None:
    s.script_server_tool(fake)
    # ChatOpenAI's default async HTTP client is cached across instances, and so across the
    # event loops of tests; a pooled connection of a closed loop fails. One client per loop:
    async with httpx.AsyncClient() as http:
        llm = ChatOpenAI(model=agent, base_url=base_url, api_key="unused", max_retries=0,  # type: ignore[arg-type]
                         stream_usage=True, http_async_client=http)
        chunks = [chunk async for chunk in llm.astream("Weather in Oslo?")]
    whole = reduce(operator.add, chunks)
    assert whole.content == s.SERVER_ANSWER
    assert usage_of(whole) == s.TOTAL_TWO_CALLS


def test_mixed_turn(llm: ChatOpenAI, fake: Any) -> None:
    s.script_mixed(fake)
    bound = llm.bind_tools([get_local_time])
    history: list[BaseMessage] = [HumanMessage("Weather in Oslo, and the time in UTC?")]
    first = bound.invoke(history)
    assert [c["name"] for c in first.tool_calls] == ["get_local_time"]
    run_client_tools(history, first)
    final = bound.invoke(history)
    assert final.content == s.MIXED_ANSWER
    s.assert_mixed_turn_seen(fake)


def test_structured_output(llm: ChatOpenAI, fake: Any) -> None:
    s.script_structured(fake)
    structured = llm.with_structured_output(s.City, method="json_schema", include_raw=True)
    result: Any = structured.invoke("The largest city of Norway?")
    assert result["parsed"] == s.CITY and result["parsing_error"] is None
    assert usage_of(result["raw"]) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_schema_reached_upstream(fake)


# -- ChatOpenAI on the Responses API (use_responses_api=True) -------------------------------


@pytest.fixture
def responses_llm(agent: str, base_url: str) -> ChatOpenAI:
    return ChatOpenAI(model=agent, base_url=base_url, api_key="unused", max_retries=0, use_responses_api=True)  # type: ignore[arg-type]


def test_responses_client_tool_round_trip(responses_llm: ChatOpenAI, fake: Any) -> None:
    s.script_client_tool(fake)
    bound = responses_llm.bind_tools([get_local_time])
    history: list[BaseMessage] = [HumanMessage("What time is it in UTC?")]
    first = bound.invoke(history)
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [("get_local_time", {"tz": "UTC"})]
    run_client_tools(history, first)
    final = bound.invoke(history)
    assert final.text == s.CLIENT_ANSWER
    assert usage_of(final) == {**s.USAGE_ANSWER, "total_tokens": 28}
    s.assert_client_result_reached_upstream(fake)


def test_responses_server_tool_streamed(agent: str, base_url: str, fake: Any) -> None:
    s.script_server_tool(fake)
    llm = ChatOpenAI(model=agent, base_url=base_url, api_key="unused", max_retries=0,  # type: ignore[arg-type]
                     use_responses_api=True, stream_usage=True)
    whole = reduce(operator.add, llm.stream("Weather in Oslo?"))
    assert whole.text == s.SERVER_ANSWER
    assert usage_of(whole) == s.TOTAL_TWO_CALLS
    s.assert_server_tool_ran(fake)


def test_responses_structured_output(responses_llm: ChatOpenAI, fake: Any) -> None:
    s.script_structured(fake)
    result: Any = responses_llm.with_structured_output(s.City, method="json_schema").invoke("The largest city of Norway?")
    assert result == s.CITY
    s.assert_schema_reached_upstream(fake)

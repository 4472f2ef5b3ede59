"""The scenarios every client library runs, scripted on the fake upstream, and the checks
on what reached the upstream.

Each scenario queues the upstream's replies with exact, distinct usage figures, so a client
that drops a call's usage or counts one twice reports a different total.

- client tool: the model calls ``get_local_time`` (defined and run by the client); the
  client sends the result back; the model answers with it.
- server tool: the model calls ``get_weather`` (the agent's own tool, run in the server);
  the model answers with its result; the client sees only the answer.
- mixed turn: the model calls both in one turn; the server runs its own and hands the
  client's back; after the client's result the model must have seen both results.
- structured output: the client asks for a JSON schema (``response_format`` /
  ``text.format``); the upstream receives it and the client parses the answer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

USAGE_TOOL_ROUND = {"prompt_tokens": 11, "completion_tokens": 7}  # total 18
USAGE_ANSWER = {"prompt_tokens": 23, "completion_tokens": 5}  # total 28
TOTAL_TWO_CALLS = {"prompt_tokens": 34, "completion_tokens": 12, "total_tokens": 46}

CLIENT_CALL_ID = "call_client_time"
SERVER_CALL_ID = "call_server_weather"
CLIENT_TOOL_RESULT = "12:00 in UTC"
SERVER_TOOL_RESULT = "Sunny in Oslo"
CLIENT_ANSWER = "It is 12:00 in UTC."
SERVER_ANSWER = "It is sunny in Oslo."
MIXED_ANSWER = "Sunny in Oslo, and it is 12:00 in UTC."

LOCAL_TIME_SCHEMA = {
    "type": "object",
    "properties": {"tz": {"type": "string", "description": "an IANA time zone"}},
    "required": ["tz"],
    "additionalProperties": False,
}
LOCAL_TIME_DESCRIPTION = "The local time in a time zone (runs on the client)."


def get_local_time(tz: str) -> str:
    """The client's tool (each library wraps it its own way)."""
    return f"12:00 in {tz}"


class City(BaseModel):
    """The structured output the clients ask for."""

    name: str
    population: int


CITY_JSON = '{"name": "Oslo", "population": 709000}'
CITY = City(name="Oslo", population=709000)


def client_call() -> dict[str, Any]:
    return {"name": "get_local_time", "arguments": {"tz": "UTC"}, "id": CLIENT_CALL_ID}


def server_call() -> dict[str, Any]:
    return {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": SERVER_CALL_ID}


def script_client_tool(fake: Any) -> None:
    """Two upstream calls, each answering one client request."""
    fake.add_reply(tool_calls=[client_call()], usage=USAGE_TOOL_ROUND)
    fake.add_reply(CLIENT_ANSWER, usage=USAGE_ANSWER)


def script_server_tool(fake: Any) -> None:
    """Two upstream calls within one client request."""
    fake.add_reply(tool_calls=[server_call()], usage=USAGE_TOOL_ROUND)
    fake.add_reply(SERVER_ANSWER, usage=USAGE_ANSWER)


def script_mixed(fake: Any) -> None:
    """One upstream call asking for both tools, then the answer after the client's result."""
    fake.add_reply(tool_calls=[server_call(), client_call()], usage=USAGE_TOOL_ROUND)
    fake.add_reply(MIXED_ANSWER, usage=USAGE_ANSWER)


def script_structured(fake: Any) -> None:
    fake.add_reply(CITY_JSON, usage=USAGE_ANSWER)


def upstream_messages(fake: Any, index: int = -1) -> list[dict[str, Any]]:
    """The messages of one recorded upstream request (default: the last)."""
    return list(fake.requests[index].json["messages"])


def tool_results(messages: list[dict[str, Any]]) -> dict[str, str]:
    """``tool_call_id`` -> the text of each tool message."""
    out = {}
    for m in messages:
        if m.get("role") == "tool":
            content = m.get("content")
            if isinstance(content, list):
                content = "".join(str(p.get("text", "")) for p in content)
            out[m["tool_call_id"]] = content
    return out


def requested_calls(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``id`` -> ``{"name", "arguments"}`` of every assistant tool call in ``messages``."""
    return {
        c["id"]: {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")}
        for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or ()
    }


def assert_client_result_reached_upstream(fake: Any) -> None:
    """The client's call and its result are in the upstream's last request."""
    messages = upstream_messages(fake)
    assert requested_calls(messages).get(CLIENT_CALL_ID) == {"name": "get_local_time", "arguments": {"tz": "UTC"}}, messages
    assert tool_results(messages).get(CLIENT_CALL_ID) == CLIENT_TOOL_RESULT, messages


def assert_server_tool_ran(fake: Any) -> None:
    """The agent's tool ran in the server: its call and result are in the upstream's last
    request, and the upstream was offered the agent's tool."""
    messages = upstream_messages(fake)
    assert requested_calls(messages).get(SERVER_CALL_ID) == {"name": "get_weather", "arguments": {"city": "Oslo"}}, messages
    assert tool_results(messages).get(SERVER_CALL_ID) == SERVER_TOOL_RESULT, messages
    assert "get_weather" in offered_tools(fake, 0)


def assert_mixed_turn_seen(fake: Any) -> None:
    """After the client's result, the model saw the whole turn: its call of the server's
    tool with that tool's result, and its call of the client's tool with the client's.

    Calls are matched by name: the server may give the client's call of a mixed turn an id
    of its own (the kernel does, to find the turn again)."""
    messages = upstream_messages(fake)
    results = tool_results(messages)
    by_name = {call["name"]: (call_id, call["arguments"]) for call_id, call in requested_calls(messages).items()}
    assert "get_weather" in by_name, f"the model never saw its own call of the server's tool: {messages}"
    weather_id, weather_args = by_name["get_weather"]
    assert weather_args == {"city": "Oslo"}, messages
    assert results.get(weather_id) == SERVER_TOOL_RESULT, f"the model never saw the server tool's result: {messages}"
    assert "get_local_time" in by_name, messages
    time_id, time_args = by_name["get_local_time"]
    assert time_args == {"tz": "UTC"}, messages
    assert results.get(time_id) == CLIENT_TOOL_RESULT, messages
    # every tool message answers a call made before it (what OpenAI itself checks)
    seen: set[str] = set()
    for m in messages:
        if m.get("role") == "assistant":
            seen |= {c["id"] for c in m.get("tool_calls") or ()}
        if m.get("role") == "tool":
            assert m["tool_call_id"] in seen, f"a tool result without its call before it: {messages}"


def offered_tools(fake: Any, index: int = -1) -> list[str]:
    """The tool names offered to the upstream in one request."""
    return [t["function"]["name"] for t in fake.requests[index].json.get("tools") or ()]


def assert_schema_reached_upstream(fake: Any) -> None:
    """The upstream was asked for JSON matching the City schema."""
    fmt = fake.last_request.json.get("response_format")
    assert fmt and fmt["type"] == "json_schema", fake.last_request.json
    schema = fmt["json_schema"]["schema"]
    assert set(schema["properties"]) == {"name", "population"}, fmt

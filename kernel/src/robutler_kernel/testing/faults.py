"""The provider fault matrix as data: each fault an upstream can have, how to inject it in a
fake upstream (:class:`~.fake_openai.FakeOpenAI`, :class:`~.fake_anthropic.FakeAnthropic`),
and what a client of the kernel must get for it, JSON and streamed.

The plugins' tests (``tests/plugins/test_fault_matrix.py``) run every fault on every
transport; a soak or chaos suite reuses the same table::

    from robutler_kernel.testing.faults import FAULTS, agent_config, check_json, check_stream

    for fault in FAULTS:
        fault.inject(fake)                       # queue the broken reply on a fake
        response = post(json_request)            # the kernel serving agent_config(...)
        check_json(fault, response.status_code, response.headers, response.json())

The expectations assume the agent of :func:`agent_config`: one try (``retry.attempts``
1, so a fault is answered, not retried) and a provider ``timeout`` of :data:`TIMEOUT`
seconds. A fault that strikes once text reached the client (``mid_stream``) ends the
stream with an ``error`` event and ``[DONE]``, status 200 and never a ``finish_reason``;
any other is the error status, before the first byte of the stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fakeserver import FakeServer
from .ports import closed_port

#: The provider ``timeout`` (seconds) the expectations assume: the stalls run past it.
TIMEOUT = 1.0

#: The text the fake answers for the faults that strike mid-stream: more words than
#: events sent before the fault, so text reaches the client before it.
TEXT = "one two three four five six seven eight"

#: Stream events sent before a mid-stream fault: with the OpenAI fake the role chunk and
#: three words; with the Anthropic fake ``message_start``, ``ping``, the text block's start
#: and one word.
AFTER = 4


@dataclass(frozen=True)
class Outcome:
    """What the client gets.

    :ivar status: the HTTP status (200 for a stream whose fault struck mid-stream).
    :ivar code: the error's ``code``.
    :ivar type: the error's ``type``.
    :ivar headers: response headers that must be there (lower-case names) with their value.
    :ivar message: text the error message must contain.
    """

    status: int
    code: str
    type: str = "api_error"
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class Fault:
    """One upstream fault.

    :ivar name: a short id (test ids, summary tables).
    :ivar what: what the upstream does, in words.
    :ivar json: what a JSON request gets.
    :ivar stream: what a streamed request gets (``status`` 200 when ``mid_stream``).
    :ivar mid_stream: whether the streamed fault strikes after text reached the client.
    :ivar reply: the fields of the scripted reply (``fault``, ``delay``, ``status``...), the
        same for both fakes; ``None`` for :attr:`refused`.
    :ivar error: ``(status, message)`` of an error reply (``add_error``), else ``None``.
    :ivar error_fields: more ``add_error`` keywords (``retry_after``).
    :ivar openai_error: ``add_error`` keywords only the OpenAI fake knows (``param``).
    :ivar refused: nothing listens at the upstream's address at all.
    """

    name: str
    what: str
    json: Outcome
    stream: Outcome
    mid_stream: bool = False
    reply: Mapping[str, Any] | None = None
    error: tuple[int, str] | None = None
    error_fields: Mapping[str, Any] = field(default_factory=dict)
    openai_error: Mapping[str, Any] = field(default_factory=dict)
    refused: bool = False

    def inject(self, fake: FakeServer[Any]) -> None:
        """Queue this fault's reply on ``fake`` (nothing for :attr:`refused`: point the
        agent at :func:`refused_url` instead)."""
        if self.error is not None:
            status, message = self.error
            extra = dict(self.error_fields)
            if type(fake).__name__ == "FakeOpenAI":
                extra.update(self.openai_error)
            fake.add_error(status, message, **extra)  # type: ignore[attr-defined]
        elif self.reply is not None:
            fake.add_reply(**{"content": TEXT, **self.reply})

    def outcome(self, stream: bool) -> Outcome:
        """The expected outcome of a JSON (``stream=False``) or streamed request."""
        return self.stream if stream else self.json


def _same(status: int, code: str, type: str = "api_error", **kw: Any) -> tuple[Outcome, Outcome]:
    outcome = Outcome(status, code, type, **kw)
    return outcome, outcome


def _fault(name: str, what: str, outcomes: tuple[Outcome, Outcome], **kw: Any) -> Fault:
    return Fault(name, what, outcomes[0], outcomes[1], **kw)


_UNREACHABLE = Outcome(502, "provider_unreachable")
_TIMEOUT = Outcome(504, "provider_timeout")
_INCOMPLETE = Outcome(502, "provider_incomplete")
_BAD_BODY = Outcome(502, "provider_error")
_MID = Outcome(200, "")  # the stream's status; the error event carries the code


#: Every fault, in the order of the docs' tables.
FAULTS: Sequence[Fault] = (
    _fault("refused", "nothing listens: the connection is refused",
           (_UNREACHABLE, _UNREACHABLE), refused=True),
    _fault("accept_then_drop", "accepts the connection, reads the request, closes it unanswered",
           (_UNREACHABLE, _UNREACHABLE), reply={"fault": "drop"}),
    _fault("drop_mid_body", "closes the connection in the middle of the answer's body",
           (_UNREACHABLE, Outcome(200, "provider_unreachable")), mid_stream=True,
           reply={"fault": "drop_mid_body", "fault_after": AFTER}),
    _fault("stall_before_headers", f"sends nothing for longer than the {TIMEOUT:g}s timeout",
           (_TIMEOUT, _TIMEOUT), reply={"delay": TIMEOUT * 3}),
    _fault("stall_mid_body", "goes silent in the middle of the answer (a read timeout)",
           (_TIMEOUT, Outcome(200, "provider_timeout")), mid_stream=True,
           reply={"fault": "stall", "fault_after": AFTER}),
    _fault("truncated", "the JSON is cut in half; the stream ends cleanly with no finish "
           "reason and no [DONE] / message_stop",
           (_BAD_BODY, Outcome(200, "provider_incomplete")), mid_stream=True,
           reply={"fault": "truncate", "fault_after": AFTER}),
    _fault("truncated_before_text", "the stream ends cleanly before any text, finish reason "
           "or end marker (the JSON: cut in half)",
           (_BAD_BODY, _INCOMPLETE), reply={"fault": "truncate", "fault_after": 1}),
    _fault("not_json", "a 200 whose body is an HTML page (a proxy's error page)",
           (_BAD_BODY, _INCOMPLETE), reply={"fault": "not_json"}),
    _fault("malformed_sse", "a data: line that is not JSON in the middle of the stream "
           "(the JSON: an HTML page)", (_BAD_BODY, Outcome(200, "provider_error")),
           mid_stream=True, reply={"fault": "bad_sse", "fault_after": AFTER}),
    _fault("429", "429 with Retry-After: 7",
           _same(429, "rate_limit_exceeded", "rate_limit_error", headers={"retry-after": "7"}),
           error=(429, "Rate limit reached"), error_fields={"retry_after": 7}),
    _fault("500", "500 with an error body", _same(502, "provider_error", message="(500)"),
           error=(500, "The server had an error")),
    _fault("502", "502 with an error body", _same(502, "provider_error", message="(502)"),
           error=(502, "Bad gateway")),
    _fault("503", "503 with an error body", _same(503, "service_unavailable"),
           error=(503, "Service unavailable")),
    _fault("529", "529 (Anthropic's overloaded)", _same(503, "service_unavailable"),
           error=(529, "Overloaded")),
    _fault("401", "401: the key is refused",
           _same(502, "provider_auth_failed", message="api_key"), error=(401, "Invalid API key")),
    _fault("400", "400 with an OpenAI error body naming the parameter",
           _same(400, "invalid_request", "invalid_request_error", message="max_tokens is too large"),
           error=(400, "max_tokens is too large"), openai_error={"param": "max_tokens",
                                                                  "type": "invalid_request_error"}),
)


#: Every way a provider skill reaches its upstream: id -> (provider, the skill's settings).
#: The fault matrix runs each fault on each of them.
TRANSPORTS: Mapping[str, tuple[str, dict[str, Any]]] = {
    "openai-sdk-aiohttp": ("openai", {"transport": "sdk", "http_client": "aiohttp"}),
    "openai-sdk-httpx": ("openai", {"transport": "sdk", "http_client": "httpx"}),
    "openai-direct": ("openai", {"transport": "direct"}),
    "anthropic-aiohttp": ("anthropic", {"http_client": "aiohttp"}),
    "anthropic-httpx": ("anthropic", {"http_client": "httpx"}),
}


def fault(name: str) -> Fault:
    """The fault called ``name``."""
    for item in FAULTS:
        if item.name == name:
            return item
    raise KeyError(name)


def refused_url(api: str) -> str:
    """A base URL where nothing listens, for ``api`` ``"openai"`` (with ``/v1``) or
    ``"anthropic"``."""
    return f"http://127.0.0.1:{closed_port()}" + ("/v1" if api == "openai" else "")


def agent_config(provider: str, base_url: str, **skill: Any) -> dict[str, Any]:
    """An agent on ``<provider>/fake-model`` at ``base_url`` as the expectations assume it:
    one try, a provider timeout of :data:`TIMEOUT` seconds, ``skill`` settings added
    (``transport: direct``...)."""
    settings = {"api_key": "test-key", "base_url": base_url, "timeout": TIMEOUT,
                "connect_timeout": TIMEOUT, **skill}
    return {"model": f"{provider}/fake-model", "retry": {"attempts": 1},
            "skills": {provider: settings}}


def _check_error(outcome: Outcome, body: Any, where: str) -> list[str]:
    problems = []
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return [f"{where}: no error object in {body!r}"]
    if error.get("code") != outcome.code:
        problems.append(f"{where}: code {error.get('code')!r}, expected {outcome.code!r}")
    if error.get("type") != outcome.type:
        problems.append(f"{where}: type {error.get('type')!r}, expected {outcome.type!r}")
    if outcome.message and outcome.message not in str(error.get("message")):
        problems.append(f"{where}: message {error.get('message')!r} lacks {outcome.message!r}")
    return problems


def json_problems(item: Fault, status: int, headers: Mapping[str, str], body: Any) -> list[str]:
    """What is wrong with a JSON answer to ``item`` (an empty list: nothing)."""
    expected = item.json
    problems = [] if status == expected.status else [f"status {status}, expected {expected.status}"]
    for name, value in expected.headers.items():
        if headers.get(name) != value:
            problems.append(f"header {name}: {headers.get(name)!r}, expected {value!r}")
    return problems + _check_error(expected, body, "body")


def sse_events(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body: decoded JSON, or the raw string (``[DONE]``)."""
    import json

    events: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            try:
                events.append(json.loads(payload))
            except ValueError:
                events.append(payload)
    return events


def stream_problems(item: Fault, status: int, headers: Mapping[str, str], text: str) -> list[str]:
    """What is wrong with a streamed answer to ``item`` (an empty list: nothing).

    A fault before the first token: the error status and body. Mid-stream: status 200,
    text chunks, then an ``error`` event and ``[DONE]`` as the last two events, and no
    chunk with a ``finish_reason``.
    """
    import json

    expected = item.stream
    if status != expected.status:
        return [f"status {status}, expected {expected.status}: {text[:300]}"]
    if not item.mid_stream:
        problems = [f"header {n}: {headers.get(n)!r}, expected {v!r}"
                    for n, v in expected.headers.items() if headers.get(n) != v]
        try:
            body = json.loads(text)
        except ValueError:
            return [*problems, f"not a JSON error body: {text[:300]}"]
        return problems + _check_error(expected, body, "body")
    events = sse_events(text)
    problems = []
    if len(events) < 2 or events[-1] != "[DONE]":
        return [f"the stream does not end with [DONE]: {events[-3:]}"]
    problems += _check_error(expected, events[-2], "last event")
    finished = [e for e in events if isinstance(e, dict)
                for c in e.get("choices") or () if c.get("finish_reason")]
    if finished:
        problems.append(f"a chunk has a finish_reason: {finished[0]}")
    deltas = [c.get("delta") or {} for e in events if isinstance(e, dict)
              for c in e.get("choices") or ()]
    if not any(d.get("content") for d in deltas):
        problems.append("no text reached the client before the fault")
    return problems


__all__ = ["AFTER", "FAULTS", "TEXT", "TIMEOUT", "TRANSPORTS", "Fault", "Outcome", "agent_config", "fault",
           "json_problems", "refused_url", "sse_events", "stream_problems"]

"""Calling agents that speak A2A (the Agent2Agent protocol) instead of chat completions.

A destination is A2A when its URL has the ``a2a+`` scheme prefix (``a2a+https://host/agent``)
or its peer says ``protocol: a2a``. The agent card is read first
(``{url}/.well-known/agent-card.json``, cached per kernel for :data:`CARD_TTL` seconds), and
the message goes to the card's JSON-RPC endpoint (protocol 1.0 ``SendMessage``, or 0.3's
``message/send`` when the card offers only that). The answer is the task's artifacts (else
its status message, else the agent's message) as one chat completion.

Every HTTP call goes through the same session, SSRF guard, timeouts, size cap, headers
(the chain, the authorized amount, the peer's own credentials) and errors as a chat call
(:mod:`.client`); the card's endpoint URL is checked again (it may name another host). The
A2A SDK's types read the card (``a2a.client.card_resolver.parse_agent_card``) so both
protocol versions' cards are understood. An A2A answer arrives whole: a stream of it is one
chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import msgspec

from robutler_specs import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Message,
    RequestError,
    Usage,
)

from . import client
from .errors import failed, refused
from .guard import Refused, current_policy, safe_url

SCHEME = "a2a+"
CARD_PATH = "/.well-known/agent-card.json"
CARDS_KEY = "nli.a2a.cards"
#: Seconds an agent card is kept before it is read again.
CARD_TTL = 300.0
#: The largest card read.
CARD_BYTES = 256 * 1024
_ENDED_BADLY = {"failed", "rejected", "canceled", "auth_required", "auth-required"}


def is_a2a(url: str) -> bool:
    """Whether ``url`` names an A2A agent explicitly (``a2a+https://...``)."""
    return url.startswith((SCHEME + "http://", SCHEME + "https://"))


def strip(url: str) -> str:
    """``url`` without the ``a2a+`` prefix."""
    return url[len(SCHEME):] if is_a2a(url) else url


async def _get(session: aiohttp.ClientSession, out: client.Outbound) -> dict[str, Any]:
    """GET ``out.url`` as JSON, under the guard and the call's limits."""
    try:
        await out.policy.check(out.url)
    except Refused as exc:
        raise refused(str(exc)) from None
    token = current_policy.set(out.policy)
    try:
        response = await session.get(
            out.url, headers={k: v for k, v in out.headers.items() if k != "Content-Type"}, allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=out.timeout, connect=out.connect_timeout),
        )
    except Exception as exc:
        raise client._transport_error(out, exc) from exc
    finally:
        current_policy.reset(token)
    try:
        await client._check_status(response, out)
        body = await client._read(response, out.max_bytes, out)
    except RequestError:
        raise
    except Exception as exc:
        raise client._transport_error(out, exc) from exc
    finally:
        response.release()
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise failed(f"{out.where}: its agent card is not JSON ({exc})", "agent_bad_card") from None
    if not isinstance(decoded, dict):
        raise failed(f"{out.where}: its agent card is not a JSON object", "agent_bad_card")
    return decoded


def _endpoint(card: dict[str, Any], where: str) -> tuple[str, str]:
    """The card's JSON-RPC endpoint and protocol version (1.0 preferred, else 0.3)."""
    try:
        from a2a.client.card_resolver import parse_agent_card
    except ImportError:
        raise failed(f"{where} speaks A2A, which needs the a2a-sdk package: pip install 'robutler-plugin-nli[a2a]'",
                     "a2a_not_installed") from None
    try:
        parsed = parse_agent_card(dict(card))
    except Exception as exc:
        raise failed(f"{where}: its agent card could not be read ({type(exc).__name__}: {exc})",
                     "agent_bad_card") from None
    found: dict[str, str] = {}
    for interface in parsed.supported_interfaces:
        if interface.protocol_binding.upper() == "JSONRPC" and interface.url:
            found.setdefault((interface.protocol_version or "0.3")[:3], interface.url)
    for version in ("1.0", "0.3"):
        if version in found:
            return found[version], version
    raise failed(f"{where}: its agent card offers no JSON-RPC interface (this client speaks A2A over JSON-RPC)",
                 "agent_bad_card")


async def card_of(kernel_state: dict[str, Any], session: aiohttp.ClientSession, base: client.Outbound,
                  url: str) -> dict[str, Any]:
    """The agent card of the agent at ``url`` (cached)."""
    cards: dict[str, tuple[float, dict[str, Any]]] = kernel_state.setdefault(CARDS_KEY, {})
    cached = cards.get(url)
    now = time.monotonic()
    if cached is not None and now - cached[0] < CARD_TTL:
        return cached[1]
    out = client.Outbound(url=url + CARD_PATH, payload={}, headers=dict(base.headers), policy=base.policy,
                          timeout=base.timeout, connect_timeout=base.connect_timeout,
                          max_bytes=min(base.max_bytes, CARD_BYTES), where=base.where)
    card = await _get(session, out)
    cards[url] = (now, card)
    return card


def _request(text: str, version: str) -> dict[str, Any]:
    message_id = uuid.uuid4().hex
    if version == "1.0":
        message: dict[str, Any] = {"messageId": message_id, "role": "ROLE_USER", "parts": [{"text": text}]}
        return {"jsonrpc": "2.0", "id": message_id, "method": "SendMessage", "params": {"message": message}}
    message = {"kind": "message", "messageId": message_id, "role": "user", "parts": [{"kind": "text", "text": text}]}
    return {"jsonrpc": "2.0", "id": message_id, "method": "message/send", "params": {"message": message}}


def _texts(parts: Any) -> list[str]:
    return [p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _state(status: Any) -> str:
    raw = str((status or {}).get("state", "")).lower()
    return raw.removeprefix("task_state_").replace("_", "-")


def answer_of(body: dict[str, Any], where: str) -> str:
    """The answer's text from a JSON-RPC reply to ``message/send`` (either version).

    :raises RequestError: a JSON-RPC error, a task that failed, or no answer at all.
    """
    error = body.get("error")
    if isinstance(error, dict):
        raise failed(f"{where} answered A2A error {error.get('code')}: {error.get('message') or 'no message'}",
                     "agent_error")
    result = body.get("result")
    if not isinstance(result, dict):
        raise failed(f"{where} did not answer with an A2A result", "agent_bad_reply")
    task = result.get("task") if "task" in result else result if result.get("kind") == "task" else None
    message = result.get("message") if "message" in result else result if result.get("kind") == "message" else None
    if isinstance(task, dict):
        status = task.get("status") or {}
        said = _texts((status.get("message") or {}).get("parts"))
        state = _state(status)
        if state in _ENDED_BADLY:
            raise failed(f"{where}: its task ended {state}: {' '.join(said) or 'no reason given'}", "agent_task_failed")
        texts = [t for artifact in task.get("artifacts") or [] for t in _texts(artifact.get("parts"))]
        # input-required (a question back) and the like: the status message is the answer
        return "".join(texts) if texts and state == "completed" else " ".join(said) or "".join(texts)
    if isinstance(message, dict):
        return "".join(_texts(message.get("parts")))
    raise failed(f"{where} answered neither a task nor a message", "agent_bad_reply")


async def complete(kernel_state: dict[str, Any], session: aiohttp.ClientSession, out: client.Outbound,
                   url: str, messages: list[Message]) -> tuple[ChatCompletion, dict[str, str]]:
    """Ask the A2A agent at ``url`` (no ``a2a+`` prefix) the last user message of
    ``messages`` (earlier ones are given as context); its answer as a completion, and the
    response headers (``X-Robutler-Cost`` when the callee is a Robutler agent)."""
    card = await card_of(kernel_state, session, out, url)
    endpoint, version = _endpoint(card, out.where)
    text = _prompt(messages)
    call = client.Outbound(url=endpoint, payload=_request(text, version),
                           headers={**out.headers, "Accept": "application/json", "A2A-Version": version},
                           policy=out.policy, timeout=out.timeout, connect_timeout=out.connect_timeout,
                           max_bytes=out.max_bytes, where=out.where)
    response = await client._send(session, call)
    try:
        await client._check_status(response, call)
        body = await client._read(response, call.max_bytes, call)
    except RequestError:
        raise
    except Exception as exc:
        raise client._transport_error(call, exc) from exc
    finally:
        response.release()
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise failed(f"{out.where} did not answer with JSON-RPC ({exc})", "agent_bad_reply") from None
    if not isinstance(decoded, dict):
        raise failed(f"{out.where} did not answer with a JSON-RPC object", "agent_bad_reply")
    answer = answer_of(decoded, out.where)
    completion = ChatCompletion(
        id=f"a2a-{uuid.uuid4().hex}", created=int(time.time()), model=card.get("name") or safe_url(url),
        choices=[Choice(0, Message(role="assistant", content=answer), "stop")], usage=Usage(),
    )
    return completion, dict(response.headers)


def _prompt(messages: list[Message]) -> str:
    """What is sent: the last user message, after the rest of the conversation as context
    (A2A sends one message; a handoff's conversation must not be lost)."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        return "\n".join(m.text() for m in messages)
    earlier = [f"{m.role}: {m.text()}" for m in messages[:last] if m.role in ("user", "assistant") and m.text()]
    question = messages[last].text()
    if not earlier:
        return question
    return "Conversation so far:\n" + "\n".join(earlier) + "\n\nNow: " + question


async def as_chunks(completion: ChatCompletion) -> AsyncGenerator[ChatCompletionChunk, None]:
    """A whole answer as a stream of one chunk."""
    choice = completion.choices[0]
    delta = Delta(role="assistant", content=choice.message.text() or None, tool_calls=None)
    yield ChatCompletionChunk(id=completion.id, created=completion.created, model=completion.model,
                              choices=[ChunkChoice(0, delta, "stop")], usage=completion.usage)


__all__ = ["CARD_PATH", "SCHEME", "answer_of", "as_chunks", "card_of", "complete", "is_a2a", "strip"]

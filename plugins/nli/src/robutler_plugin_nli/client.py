"""The HTTP side: one aiohttp session per kernel, and one call to an agent's
``/chat/completions``, answered whole or streamed.

Every call is checked by the SSRF guard first (:mod:`.guard`), made with redirects off
(a redirect is reported, never followed: its target was not checked), cut at the call's
timeout, and read under ``max_response_bytes`` (a stream counts all its events together).
Failures are ``RequestError`` s (:mod:`.errors`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from msgspec import UNSET, UnsetType

from robutler_specs import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    KernelAPI,
    Message,
    RequestError,
    SSEStream,
    Usage,
)

from .errors import answered, failed, refused, too_slow
from .guard import GuardedResolver, HostPolicy, Refused, current_policy, safe_url

SESSION_KEY = "nli.session"
USER_AGENT = "robutler-plugin-nli/0.1"
#: The most of an error answer read to find its message.
ERROR_BODY_BYTES = 64 * 1024


def session(kernel: KernelAPI) -> aiohttp.ClientSession:
    """The kernel's session (opened on first use, closed by ``robutler_shutdown``).

    No DNS cache (each connection is resolved, and checked, by :class:`GuardedResolver`),
    no proxies from the environment, no cookies kept between calls.
    """
    current = kernel.state.get(SESSION_KEY)
    if isinstance(current, aiohttp.ClientSession) and not current.closed:
        return current
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(), use_dns_cache=False, limit=100)
    opened = aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
    )
    kernel.state[SESSION_KEY] = opened
    return opened


async def close_session(kernel: KernelAPI) -> None:
    """Close the kernel's session, if one was opened."""
    current = kernel.state.pop(SESSION_KEY, None)
    if isinstance(current, aiohttp.ClientSession):
        await current.close()


@dataclass
class Outbound:
    """One call: where, what, and the limits it runs under."""

    url: str
    payload: dict[str, Any]
    headers: dict[str, str]
    policy: HostPolicy
    timeout: float
    connect_timeout: float
    max_bytes: int
    #: The callee, as messages name it (``agent 'b' at http://...``).
    where: str = ""

    def __post_init__(self) -> None:
        if not self.where:
            self.where = f"the agent at {safe_url(self.url)}"


# -- lenient views of what a callee sends (any OpenAI-compatible server) ---------------------


class _Choice(msgspec.Struct):
    index: int = 0
    message: Message = msgspec.field(default_factory=lambda: Message(role="assistant"))
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    id: str = ""
    created: int = 0
    model: str = ""
    usage: Usage | None = None
    agent: str | UnsetType = UNSET


class _ChunkChoice(msgspec.Struct):
    index: int = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    finish_reason: str | None = None


class _StreamError(msgspec.Struct):
    message: str = ""
    code: str | int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    id: str = ""
    created: int = 0
    model: str = ""
    usage: Usage | None = None
    agent: str | UnsetType = UNSET
    error: _StreamError | None = None


def _completion(raw: _Completion) -> ChatCompletion:
    choices = [Choice(index=c.index, message=c.message, finish_reason=c.finish_reason) for c in raw.choices]
    return ChatCompletion(id=raw.id, created=raw.created, model=raw.model, choices=choices,
                          usage=raw.usage or Usage(), agent=raw.agent)


def _chunk(raw: _Chunk) -> ChatCompletionChunk:
    choices = [ChunkChoice(index=c.index, delta=c.delta, finish_reason=c.finish_reason) for c in raw.choices]
    return ChatCompletionChunk(id=raw.id, created=raw.created, model=raw.model, choices=choices,
                               usage=raw.usage if raw.usage is not None else UNSET, agent=raw.agent)


# -- the call ---------------------------------------------------------------------------------


def _transport_error(out: Outbound, exc: BaseException) -> RequestError:
    """A failure of aiohttp (or of the guard at connect time) as the error to report."""
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return too_slow(out.where, out.timeout)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = str(exc.os_error)
        if "refused:" in reason:
            return refused(f"{out.where}: {reason.split('refused:', 1)[1].strip()}")
        return failed(f"{out.where} could not be reached ({exc.os_error.strerror or reason}); is it running?",
                      "agent_unreachable")
    if isinstance(exc, aiohttp.InvalidURL):
        return refused(f"{out.where}: invalid URL ({exc})")
    return failed(f"{out.where}: the connection failed ({type(exc).__name__}: {exc})", "agent_connection_failed")


async def _read(response: aiohttp.ClientResponse, limit: int, out: Outbound, *, lenient: bool = False) -> bytes:
    """The body, refused when over ``limit`` (or, ``lenient``, cut at it)."""
    if not lenient and response.content_length is not None and response.content_length > limit:
        raise _too_large(out)
    body = bytearray()
    async for piece in response.content.iter_chunked(64 * 1024):
        body += piece
        if len(body) > limit:
            if lenient:
                return bytes(body[:limit])
            raise _too_large(out)
    return bytes(body)


def _too_large(out: Outbound) -> RequestError:
    return failed(
        f"{out.where} sent more than {out.max_bytes} bytes; raise skills.nli.max_response_bytes to accept it",
        "agent_response_too_large",
    )


async def _check_status(response: aiohttp.ClientResponse, out: Outbound) -> None:
    if 300 <= response.status < 400:
        location = response.headers.get("Location", "")
        target = safe_url(location) if location.startswith(("http://", "https://")) else location or "nowhere"
        raise failed(
            f"{out.where} redirected ({response.status}) to {target}; redirects are not followed, "
            "call the final URL instead",
            "agent_redirect",
        )
    if response.status >= 400:
        body = await _read(response, min(ERROR_BODY_BYTES, out.max_bytes), out, lenient=True)
        raise answered(out.where, response.status, body)


async def _send(client: aiohttp.ClientSession, out: Outbound) -> aiohttp.ClientResponse:
    """Check the URL, then send the request; the caller releases the response."""
    try:
        await out.policy.check(out.url)
    except Refused as exc:
        raise refused(str(exc)) from None
    token = current_policy.set(out.policy)
    try:
        return await client.post(
            out.url,
            data=msgspec.json.encode(out.payload),
            headers={"Content-Type": "application/json", **out.headers},
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=out.timeout, connect=out.connect_timeout),
        )
    except Exception as exc:
        raise _transport_error(out, exc) from exc
    finally:
        current_policy.reset(token)


async def complete(client: aiohttp.ClientSession, out: Outbound) -> tuple[ChatCompletion, dict[str, str]]:
    """The callee's completion and its response headers.

    :raises RequestError: refused, unreachable, timed out, an error answer, too large, or
        not a completion.
    """
    response = await _send(client, out)
    try:
        await _check_status(response, out)
        body = await _read(response, out.max_bytes, out)
    except RequestError:
        raise
    except Exception as exc:
        raise _transport_error(out, exc) from exc
    finally:
        response.release()
    try:
        raw = msgspec.json.decode(body, type=_Completion)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise failed(f"{out.where} did not answer with a chat completion ({exc})", "agent_bad_reply") from None
    if not raw.choices:
        raise failed(f"{out.where} answered with no choices", "agent_bad_reply")
    return _completion(raw), dict(response.headers)


async def stream(client: aiohttp.ClientSession, out: Outbound) -> AsyncIterator[ChatCompletionChunk]:
    """The callee's chunks. The request is sent and its status checked before this returns,
    so a refusal, an unreachable agent or an error answer is raised here; closing the
    iterator closes the connection (the callee sees the request cancelled)."""
    response = await _send(client, out)
    try:
        await _check_status(response, out)
    except RequestError:
        response.release()
        raise
    except Exception as exc:
        response.release()
        raise _transport_error(out, exc) from exc
    if "text/event-stream" not in response.headers.get("Content-Type", ""):
        # A server that ignored ``stream``: its whole answer, as chunks.
        try:
            body = await _read(response, out.max_bytes, out)
        except RequestError:
            raise
        except Exception as exc:
            raise _transport_error(out, exc) from exc
        finally:
            response.release()
        try:
            whole = _completion(msgspec.json.decode(body, type=_Completion))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise failed(f"{out.where} did not answer with a stream or a completion ({exc})",
                         "agent_bad_reply") from None
        return _as_chunks(whole)
    return _events(response, out)


def _decoder(out: Outbound) -> Callable[[bytes], ChatCompletionChunk | None]:
    def decode(payload: bytes) -> ChatCompletionChunk | None:
        try:
            raw = msgspec.json.decode(payload, type=_Chunk)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise failed(f"{out.where} sent an event that is not a chunk ({exc})", "agent_bad_reply") from None
        if raw.error is not None:
            code = None if raw.error.code is None else str(raw.error.code)
            raise failed(f"{out.where} failed mid-stream: {raw.error.message or 'no message'}", code or "agent_error")
        return _chunk(raw)

    return decode


async def _capped(response: aiohttp.ClientResponse, out: Outbound) -> AsyncGenerator[bytes, None]:
    total = 0
    async for piece in response.content.iter_any():
        total += len(piece)
        if total > out.max_bytes:
            raise _too_large(out)
        yield piece


async def _events(response: aiohttp.ClientResponse, out: Outbound) -> AsyncGenerator[ChatCompletionChunk, None]:
    async def close() -> None:
        response.close()

    events = SSEStream(_capped(response, out), close, lambda exc: _transport_error(out, exc), _decoder(out),
                       done=b"[DONE]")
    try:
        async for chunk in events:
            yield chunk
    finally:
        await events.aclose()


async def _as_chunks(whole: ChatCompletion) -> AsyncGenerator[ChatCompletionChunk, None]:
    for choice in whole.choices:
        delta = Delta(role="assistant", content=choice.message.text() or None, tool_calls=None)
        yield ChatCompletionChunk(id=whole.id, created=whole.created, model=whole.model,
                                  choices=[ChunkChoice(index=choice.index, delta=delta,
                                                       finish_reason=choice.finish_reason or "stop")],
                                  usage=whole.usage, agent=whole.agent)


__all__ = ["SESSION_KEY", "Outbound", "close_session", "complete", "session", "stream"]

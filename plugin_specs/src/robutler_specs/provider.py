"""What LLM provider plugins share: their common settings and an SSE event reader.

A provider skill's ``Config`` subclasses :class:`ProviderConfig`, so every provider has the
same ``timeout``, ``connect_timeout``, ``default_params`` and ``max_connections`` (its
connection pool's size, a documented limit rather than its SDK's hidden one) and the kernel can enforce the
total timeout of each attempt (it owns retries and fallback; see docs/configuration.md).
:class:`SSEStream` turns a streamed HTTP body into decoded events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import msgspec

from .errors import RequestError
from .health import ProviderHealth

T = TypeVar("T")

#: ``max_connections``' default: enough for 10,000 concurrent streams to one provider.
DEFAULT_MAX_CONNECTIONS = 16384

#: Idle connections kept for reuse (httpx; aiohttp keeps every idle one until its timeout).
KEEPALIVE_CONNECTIONS = 1000


class ProviderConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings every LLM provider skill has (its own ``Config`` adds the rest).

    :ivar timeout: seconds one attempt may take in all: the request, the answer and, for a
        stream, every chunk up to the last. The kernel enforces it; running out is a 504
        that names the provider, retried (or the next fallback model tried) when no token
        has reached the client yet.
    :ivar connect_timeout: seconds to open a connection to the provider (enforced by the
        plugin's HTTP client); a connection that cannot be made is retried the same way.
    :ivar default_params: parameters sent with every call (``temperature``...); the
        request's own parameters win.
    :ivar max_connections: connections to the provider one skill instance (one agent)
        keeps open at once, streams included (each holds one to its end). A call that
        finds them all busy waits up to ``connect_timeout`` for one, then fails like a
        connection that cannot be made (504, retried). The default is sized for 10,000
        concurrent streams and more.
    :ivar health: the provider's health check (``GET {base_url}/models``, cached,
        informative unless ``required``; see :class:`~robutler_specs.health.ProviderHealth`).
    """

    timeout: float = 300.0
    connect_timeout: float = 5.0
    default_params: dict[str, Any] = {}
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    health: ProviderHealth = msgspec.field(default_factory=ProviderHealth)

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive numbers of seconds")
        if self.max_connections < 1:
            raise ValueError("max_connections must be 1 or more")


def pool_full(exc: BaseException, error: RequestError, *, plugin: str, config: ProviderConfig,
              base_url: str) -> RequestError:
    """``error``, its message saying the connection pool was full when ``exc`` (or what
    caused it) is the HTTP library's pool timeout: every one of ``max_connections`` was busy
    for ``connect_timeout`` seconds. A limit reached is named, never mistaken for a slow model."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return error
        if type(seen).__name__ == "PoolTimeout":
            error.message = (
                f"{plugin} plugin: all {config.max_connections} connections to {base_url} are in use "
                f"(the {plugin} skill's max_connections) and none came free within "
                f"{config.connect_timeout:g}s (its connect_timeout)"
            )
            error.args = (error.message,)
            return error
        seen = seen.__cause__ or seen.__context__
    return error


class SSEStream(Generic[T]):
    """Server-sent events of an open HTTP response, each ``data:`` payload decoded.

    ``decode(payload)`` turns one event's data into a value, or ``None`` to skip it (pings,
    events that carry nothing to pass on); it may raise a ``RequestError`` for an error
    event. A payload equal to ``done`` (``[DONE]`` for OpenAI) ends the stream (and sets
    :attr:`finished`); the rest of the body is still read, so the connection can go back
    to its pool. A body that runs out first ends the iteration too: whether that cut the
    answer short is the protocol's to say (a subclass checks :attr:`finished`). ``aclose()``
    closes the response; closing a stream that did not reach its end drops the
    connection, which is how the upstream learns the request was cancelled.

    :param reader: the response body, as it arrives.
    :param close: closes the response (idempotent).
    :param on_error: turns a read failure (timeout, connection lost) into a RequestError.
    :param decode: one event's data to a value (or ``None``).
    :param done: the payload that ends the stream, if the protocol has one.
    """

    def __init__(
        self,
        reader: AsyncIterator[bytes],
        close: Callable[[], Awaitable[None]],
        on_error: Callable[[Exception], RequestError],
        decode: Callable[[bytes], T | None],
        *,
        done: bytes | None = None,
    ) -> None:
        self._close = close
        self._on_error = on_error
        self._decode = decode
        self._done_marker = done
        self._reader = reader
        self._payloads: deque[bytes] = deque()
        self._lines: list[bytes] = []  # data lines of the event being read
        self._rest = b""
        self._done = False

    def __aiter__(self) -> SSEStream[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            while self._payloads and not self._done:
                payload = self._payloads.popleft()
                if payload == self._done_marker:
                    self._done = True
                    break
                value = self._decode(payload)
                if value is not None:
                    return value
            try:
                data = await self._reader.__anext__()
            except StopAsyncIteration:
                await self.aclose()
                if not self._done:
                    self._feed(b"\n\n")  # an unterminated last event still counts
                    if self._payloads:
                        continue
                raise
            except RequestError:
                raise
            except Exception as exc:
                await self.aclose()
                raise self._on_error(exc) from exc
            if not self._done:  # after the end marker the body is only drained, so
                self._feed(data)  # that the connection goes back to the pool

    def _feed(self, data: bytes) -> None:
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._lines:
                    self._payloads.append(b"\n".join(self._lines))
                    self._lines = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._lines.append(value[1:] if value.startswith(b" ") else value)
            # ``event:``, ``id:``, ``retry:`` and ``:`` comments: the data says it all

    @property
    def finished(self) -> bool:
        """Whether the ``done`` payload was read: the stream reached its end, rather than
        its body running out (a connection closed early)."""
        return self._done

    async def aclose(self) -> None:
        """Close the upstream response (idempotent)."""
        await self._close()


__all__ = ["DEFAULT_MAX_CONNECTIONS", "KEEPALIVE_CONNECTIONS", "ProviderConfig", "SSEStream", "pool_full"]

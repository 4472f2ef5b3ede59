"""One MCP server an agent uses: its session, opened once and reused by every request.

Who owns what: a :class:`Connection` owns one ``ClientSession`` over stdio (the server is a
child process) or streamable HTTP. The session lives in a task of its own (the runner),
because the SDK's transports must be entered and left in one task; requests only send calls
through it. Between the transport and the session a pump watches the messages: when the
server exits or closes the connection, or writes something that is not JSON-RPC, the calls
in flight fail at once with a tool error that says so (instead of waiting for a timeout), the
connection is marked down (the health check says why) and the next call starts it again,
no sooner than a back-off (1 s, doubling to 30 s) after the last failed start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage

from .config import ServerConfig

log = logging.getLogger("robutler.mcp")

CLIENT_INFO = types.Implementation(name="robutler", version="0.1.0")
MAX_BACKOFF = 30.0


class ServerDown(Exception):
    """The MCP server cannot be reached, stopped, or broke the protocol."""


class Connection:
    """The session with one MCP server (see the module).

    :param name: the server's key in the agent's config.
    :param config: how to reach it.
    :param agent: the agent using it (for messages).
    :param changed: called after the tool listing changed.
    """

    def __init__(self, name: str, config: ServerConfig, agent: str, changed: Callable[[], None]) -> None:
        self.name = name
        self.config = config
        self.agent = agent
        self.changed = changed
        self.session: ClientSession | None = None
        #: The server's tools, from the last listing (kept while it is down).
        self.tools: list[types.Tool] = []
        self.listed_at = 0.0
        #: Why the connection is down, when it is.
        self.error: str | None = None
        self.reason = ""
        self._runner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._backoff = 1.0
        self._inflight: set[asyncio.Future[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None
        self._closed = False

    # -- connecting ----------------------------------------------------------------------

    def what(self) -> str:
        """The server as people know it: its command or URL."""
        cfg = self.config
        return f"{cfg.command} {' '.join(cfg.args)}".strip() if cfg.transport == "stdio" else str(cfg.url)

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        cfg = self.config
        if cfg.transport == "stdio":
            assert cfg.command is not None
            params = StdioServerParameters(command=cfg.command, args=cfg.args, env=cfg.env or None, cwd=cfg.cwd)
            async with stdio_client(params) as streams:  # its stderr goes to ours, as a log
                yield streams
        else:
            assert cfg.url is not None
            async with create_mcp_http_client(headers=dict(cfg.headers)) as http, streamable_http_client(
                cfg.url, http_client=http
            ) as streams:
                yield streams

    async def _pump(self, source: Any, sink: Any, stop: asyncio.Event) -> None:
        """Carry the server's messages to the session, watching for the end and for garbage."""
        reason = "the server closed the connection (it exited or was stopped)"
        try:
            async with sink:
                async for item in source:
                    if isinstance(item, Exception):
                        self._fail_inflight(f"it sent something that is not MCP (JSON-RPC): {_short(item)}")
                        continue
                    await sink.send(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            pass
        except Exception as exc:
            reason = f"reading from it failed: {_short(exc)}"
        if not stop.is_set():
            self._down(reason)
            stop.set()

    async def _run(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                relay_send, relay_read = anyio.create_memory_object_stream[SessionMessage | Exception](16)
                group = await stack.enter_async_context(anyio.create_task_group())
                group.start_soon(self._pump, read, relay_send, stop)
                session = ClientSession(relay_read, write, message_handler=self._on_message, client_info=CLIENT_INFO)
                await stack.enter_async_context(session)
                await session.initialize()
                self.tools = await self._list(session)
                self.listed_at = time.monotonic()
                self.session = session
                self.error = None
                self._backoff = 1.0
                ready.set_result(None)
                self.changed()
                await stop.wait()
                group.cancel_scope.cancel()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(ServerDown(_short(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                self._down(f"its session failed: {_short(exc)}")
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self.session = None

    async def connect(self) -> ClientSession:
        """The live session, starting the server (or reaching it) if needed.

        :raises ServerDown: it cannot be started or reached, or failed too recently.
        """
        session = self.session
        if session is not None:
            return session
        async with self._lock:
            if self.session is not None:
                return self.session
            if self._closed:
                raise ServerDown("the agent is shutting down")
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise ServerDown(f"{self.error}; it is tried again in {wait:.0f} s")
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            stop = asyncio.Event()
            self._stop = stop
            self._runner = loop.create_task(self._run(ready, stop), name=f"mcp {self.agent}/{self.name}")
            try:
                await asyncio.wait_for(asyncio.shield(ready), self.config.connect_timeout)
            except BaseException as exc:
                stop.set()
                self._runner.cancel()
                with contextlib.suppress(BaseException):
                    await self._runner
                if isinstance(exc, TimeoutError):
                    why = f"it did not answer within {self.config.connect_timeout:g} s (connect_timeout)"
                else:
                    why = _short(exc)
                self._down(f"it could not be started: {why}" if self.config.transport == "stdio" else f"it could not be reached: {why}")
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise ServerDown(str(self.error)) from None
            assert self.session is not None
            return self.session

    def _down(self, reason: str) -> None:
        self.reason = reason
        self.error = f"MCP server {self.name!r} ({self.what()}) is down: {reason}"
        if self.session is not None:
            log.warning("agent %r: %s", self.agent, self.error)
        self.session = None
        self._fail_inflight(reason)

    def _fail_inflight(self, reason: str) -> None:
        for waiter in list(self._inflight):
            if not waiter.done():
                waiter.set_exception(ServerDown(f"MCP server {self.name!r} failed during the call: {reason}"))

    # -- tools ----------------------------------------------------------------------------

    async def _list(self, session: ClientSession) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.refresh()

    def refresh(self) -> None:
        """List the tools again in the background (once at a time)."""
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._relist())

    async def _relist(self) -> None:
        try:
            session = await self.connect()
            self.tools = await asyncio.wait_for(self._list(session), self.config.connect_timeout)
            self.listed_at = time.monotonic()
            self.changed()
        except Exception as exc:
            log.warning("agent %r: listing the tools of MCP server %r failed: %s", self.agent, self.name, _short(exc))

    def stale(self, now: float) -> bool:
        """Whether the listing is older than ``refresh`` (or missing while the server is down)."""
        refresh = self.config.refresh
        if self.session is None:
            return now >= self._retry_at
        return refresh is not None and now - self.listed_at > refresh

    # -- calls ----------------------------------------------------------------------------

    async def call(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Call ``tool``; a server that stops or breaks the protocol meanwhile is a
        :class:`ServerDown` at once."""
        session = await self.connect()
        loop = asyncio.get_running_loop()
        broken: asyncio.Future[None] = loop.create_future()
        self._inflight.add(broken)
        task = loop.create_task(session.call_tool(tool, arguments, read_timeout_seconds=self.config.timeout))
        try:
            await asyncio.wait((task, broken), return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                broken.result()  # raises ServerDown
            try:
                return task.result()
            except Exception as exc:
                if broken.done() or self.session is not session:
                    # The session ended under the call (its own error says "Connection closed").
                    await asyncio.sleep(0)
                    reason = self.reason or _short(exc)
                    raise ServerDown(f"MCP server {self.name!r} failed during the call: {reason}") from None
                raise
        finally:
            self._inflight.discard(broken)
            if broken.done() and not broken.cancelled():
                broken.exception()  # retrieved: the call's own error was raised instead
            else:
                broken.cancel()
            if not task.done():
                task.cancel()

    async def ping(self, timeout: float = 5.0) -> str:
        """The health check: the server answers a ping (it is started first if needed)."""
        try:
            session = await self.connect()
            await asyncio.wait_for(session.send_ping(), timeout)
        except ServerDown as exc:
            raise RuntimeError(str(exc)) from None
        except TimeoutError:
            raise RuntimeError(f"MCP server {self.name!r} ({self.what()}) did not answer a ping within {timeout:g} s") from None
        return f"{len(self.tools)} tools"

    async def close(self) -> None:
        """Stop the session (and the server process, for stdio)."""
        self._closed = True
        if self._refreshing is not None:
            self._refreshing.cancel()
        if self._stop is not None:
            self._stop.set()
        runner = self._runner
        if runner is not None and not runner.done():
            try:
                await asyncio.wait_for(asyncio.shield(runner), 10)
            except (TimeoutError, Exception):
                runner.cancel()
                with contextlib.suppress(BaseException):
                    await runner
        self.session = None


def _short(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _short(exc.exceptions[0])
    text = "; ".join(line.strip() for line in (str(exc) or type(exc).__name__).splitlines()[:2])
    return text if len(text) <= 300 else text[:297] + "..."


__all__ = ["Connection", "ServerDown"]

"""Helpers of the a2a tests: a kernel serving A2A on a real loopback socket, the SDK's client
pointed at it, and an A2A server built with the SDK itself."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from a2a.client import Client, ClientConfig, create_client
from a2a.types import Message, Part, Role, SendMessageRequest

ALICE_KEY = "sk-alice-0123456789abcdef"


def ask(text: str, context_id: str = "", message_id: str = "m-1") -> SendMessageRequest:
    """A message/send request of one text part."""
    return SendMessageRequest(message=Message(message_id=message_id, role=Role.ROLE_USER,
                                              parts=[Part(text=text)], context_id=context_id))


async def sdk_client(url: str, http: httpx.AsyncClient, *, streaming: bool) -> Client:
    """The SDK's client of the agent at ``url`` (its card fetched first)."""
    return await create_client(url, ClientConfig(streaming=streaming, httpx_client=http))


async def events(client: Client, request: SendMessageRequest) -> list[Any]:
    """Every StreamResponse of one send, as (kind, payload)."""
    return [(event.WhichOneof("payload"), getattr(event, event.WhichOneof("payload")))
            async for event in client.send_message(request)]


def free_port() -> int:
    """A loopback port nobody listens on yet."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_asgi(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port in a thread; its URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.025)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


__all__ = ["ALICE_KEY", "ask", "asyncio", "events", "free_port", "sdk_client", "serve_asgi"]


# -- an A2A server built with the SDK, and servers that misbehave --------------------------------


def sdk_app(base: str) -> Any:
    """An A2A agent written with the a2a-sdk (its executor, request handler and routes):
    ``echo: <text>``; ``question`` asks one back (input-required); ``fail`` fails."""
    from a2a.helpers.proto_helpers import new_text_message
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        Part,
        Task,
        TaskState,
        TaskStatus,
    )
    from starlette.applications import Starlette

    class Echo(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
            if context.current_task is None:
                await event_queue.enqueue_event(Task(
                    id=context.task_id, context_id=context.context_id,
                    status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED), history=[context.message]))
            await updater.start_work()
            text = context.get_user_input()
            if text == "question":
                await updater.requires_input(new_text_message("Which order do you mean?"))
            elif text == "fail":
                await updater.failed(new_text_message("the database is down"))
            else:
                await updater.add_artifact([Part(text=f"echo: {text}")], name="answer")
                await updater.complete()

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            raise NotImplementedError

    card = AgentCard(
        name="sdk-echo", description="An echo agent written with the a2a-sdk", version="1.0.0",
        supported_interfaces=[AgentInterface(url=f"{base}/rpc", protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True), default_input_modes=["text/plain"],
        default_output_modes=["text/plain"], skills=[AgentSkill(id="echo", name="echo", description="Echoes")],
    )
    handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card)
    return Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/rpc")])


def broken_app(rpc_url: str) -> Any:
    """A card pointing at ``rpc_url``, whose ``/garbage`` answers nonsense and ``/hang``
    never answers."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def card(request: Request) -> JSONResponse:
        return JSONResponse({"name": "broken", "description": "misbehaves", "version": "1", "skills": [],
                             "capabilities": {}, "defaultInputModes": ["text/plain"],
                             "defaultOutputModes": ["text/plain"],
                             "supportedInterfaces": [{"url": rpc_url, "protocolBinding": "JSONRPC",
                                                      "protocolVersion": "1.0"}]})

    async def garbage(request: Request) -> PlainTextResponse:
        return PlainTextResponse("<html>definitely not JSON-RPC</html>")

    async def hang(request: Request) -> PlainTextResponse:
        await asyncio.sleep(30)
        return PlainTextResponse("too late")

    return Starlette(routes=[Route("/.well-known/agent-card.json", card), Route("/garbage", garbage, methods=["POST"]),
                             Route("/hang", hang, methods=["POST"])])


@contextmanager
def hangs_up() -> Iterator[str]:
    """A TCP server on loopback that reads a request and closes the connection without a
    word (a server that exits mid-call); its URL."""
    import asyncio as aio

    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handle(reader: aio.StreamReader, writer: aio.StreamWriter) -> None:
        await reader.read(65536)
        writer.transport.abort()

    def run() -> None:
        loop = aio.new_event_loop()
        state["loop"] = loop
        server = loop.run_until_complete(aio.start_server(handle, "127.0.0.1", 0))
        state["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield f"http://127.0.0.1:{state['port']}/rpc"
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(5)

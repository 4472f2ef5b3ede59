"""The baseline: a bare Starlette-on-Hypercorn pass-through proxy of an OpenAI-compatible upstream.

``POST /v1/chat/completions`` forwards the body to the upstream with one shared
``aiohttp.ClientSession`` (keep-alive pool; the openai plugin's default transport uses the
same library, the fastest client measured here) and returns the upstream's bytes;
``stream: true`` relays the SSE bytes as they come. It reads only the ``stream`` flag of the
body (msgspec). Served by Hypercorn with the kernel's own settings
(:func:`robutler_kernel.serve.hypercorn_config`) on the kernel's event loop (uvloop when
installed): the pass-through in its fastest form, so that a ratio against it is the cost of
the kernel's work alone.
``--client lean`` forwards with the contract's HTTP client (:mod:`robutler_specs.httpclient`,
the one the openai plugin's default transport uses) instead of aiohttp: the floor of a
Python proxy on that client.
Run: ``python -m bench.passthrough --port 8100 --upstream http://127.0.0.1:8001/v1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from hypercorn.asyncio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from robutler_kernel import eventloop
from robutler_kernel.serve import hypercorn_config

HEADERS = {"content-type": "application/json", "authorization": "Bearer x"}


class _Flag(msgspec.Struct):
    stream: bool = False


_stream_flag = msgspec.json.Decoder(_Flag).decode


def build_app(upstream: str, client: str = "aiohttp") -> Starlette:
    """The proxy app; ``upstream`` is a base URL ending in ``/v1``; ``client``: ``aiohttp``
    or ``lean``."""
    if client == "lean":
        from robutler_specs.httpclient import HTTPPool

        pool = HTTPPool(upstream, max_connections=100)
        head = pool.head("POST", urlsplit(upstream).path.rstrip("/") + "/chat/completions", list(HEADERS.items()))

        async def lean(body: bytes) -> Any:
            return await pool.request(head, body)

        return _app(lean, lambda reply: reply.iter_any())

    url = upstream.rstrip("/") + "/chat/completions"
    session: dict[str, aiohttp.ClientSession] = {}

    async def post(body: bytes) -> Any:
        return await session["client"].post(url, data=body, headers=HEADERS)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as client:
            session["client"] = client
            yield

    return _app(post, lambda reply: reply.content.iter_any(), lifespan)


def _app(
    forward: Callable[[bytes], Awaitable[Any]],
    pieces: Callable[[Any], AsyncIterator[bytes]],
    lifespan: Any = None,
) -> Starlette:
    """The routes, whatever the client: ``forward(body)`` sends the request and returns the
    reply (``status``, ``read()``, ``release()``); ``pieces(reply)`` its body as it comes."""

    async def chat(request: Request) -> Response:
        body = await request.body()
        reply = await forward(body)
        if _stream_flag(body).stream:

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in pieces(reply):
                        yield chunk
                finally:
                    reply.release()

            return StreamingResponse(relay(), reply.status, media_type="text/event-stream")
        try:
            return Response(await reply.read(), reply.status, media_type="application/json")
        finally:
            reply.release()

    async def health(request: Request) -> Response:
        return Response(b"ok")

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8001/v1")
    parser.add_argument("--client", choices=["aiohttp", "lean"], default="aiohttp",
                        help="the HTTP client to the upstream (default aiohttp)")
    args = parser.parse_args()

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await serve(build_app(args.upstream, args.client), hypercorn_config(args.host, args.port), shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    eventloop.run(run())


if __name__ == "__main__":
    main()

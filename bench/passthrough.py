"""The baseline: a bare Starlette-on-Hypercorn pass-through proxy of an OpenAI-compatible upstream.

``POST /v1/chat/completions`` forwards the body to the upstream with one shared
``AsyncClient`` of the HTTP library the openai SDK uses (``httpx2`` for SDK 3.x, else
``httpx``), with the SDK's pool limits (keep-alive), and returns
the upstream's bytes; ``stream: true`` relays the SSE bytes as they come. Served by Hypercorn
with the kernel's own settings (:func:`robutler_kernel.serve.hypercorn_config`).
Run: ``python -m bench.passthrough --port 8100 --upstream http://127.0.0.1:8001/v1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator

from hypercorn.asyncio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from robutler_kernel.serve import hypercorn_config

try:  # the openai SDK's own HTTP library
    import httpx2 as httpx
except ImportError:
    import httpx  # type: ignore[no-redef]

HEADERS = {"content-type": "application/json", "authorization": "Bearer x"}


def build_app(upstream: str) -> Starlette:
    """The proxy app; ``upstream`` is a base URL ending in ``/v1``."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)  # the openai SDK's
    client = httpx.AsyncClient(base_url=upstream, limits=limits, timeout=60)

    async def chat(request: Request) -> Response:
        body = await request.body()
        if json.loads(body).get("stream"):
            reply = await client.send(client.build_request("POST", "/chat/completions", content=body, headers=HEADERS), stream=True)

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in reply.aiter_raw():
                        yield chunk
                finally:
                    await reply.aclose()

            return StreamingResponse(relay(), reply.status_code, media_type="text/event-stream")
        reply = await client.post("/chat/completions", content=body, headers=HEADERS)
        return Response(reply.content, reply.status_code, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with client:
            yield

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]), Route("/health", health)]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8001/v1")
    args = parser.parse_args()

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await serve(build_app(args.upstream), hypercorn_config(args.host, args.port), shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()

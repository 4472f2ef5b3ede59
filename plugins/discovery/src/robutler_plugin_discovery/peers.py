"""Other kernels' ``GET /agents?search=`` over HTTP (aiohttp): peers and the registry."""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec

from .entries import AgentEntry, entry_from_listing


class PeerError(Exception):
    """A peer or registry that could not be searched; the message says why."""


async def fetch_listing(
    session: aiohttp.ClientSession, base_url: str, query: str, top_k: int, *, source: str,
    timeout: float, max_bytes: int,
) -> list[AgentEntry]:
    """The agents ``{base_url}/agents?search=query&top_k=top_k`` lists, best first.

    :raises PeerError: connection failure, timeout, a non-200 answer, an answer larger
        than ``max_bytes`` or one that is not ``{"data": [...]}``.
    """
    url = f"{base_url}/agents"
    try:
        async with asyncio.timeout(timeout):
            async with session.get(url, params={"search": query, "top_k": str(top_k)}) as response:
                if response.status != 200:
                    raise PeerError(f"{url} answered {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > max_bytes:
                        raise PeerError(f"{url} answered more than {max_bytes} bytes")
    except TimeoutError:
        raise PeerError(f"{url} did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise PeerError(f"{url}: {type(exc).__name__}: {exc}") from None
    try:
        data = msgspec.json.decode(bytes(body))
    except msgspec.DecodeError:
        raise PeerError(f"{url} did not answer JSON") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise PeerError(f"{url} did not answer an agent list ({{\"data\": [...]}})")
    entries = (entry_from_listing(item, base_url, source) for item in items[:top_k])
    return [e for e in entries if e is not None]

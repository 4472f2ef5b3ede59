"""Raw ASGI responses: JSON bodies, OpenAI-shaped errors, request bodies with a size limit.

The chat endpoints speak ASGI directly (no Request/Response objects) because they are the
hot path, and because a streamed response must see the client's disconnect itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from robutler_specs import BadRequest, PayloadTooLarge, RequestError
from robutler_specs.jsondepth import MAX_JSON_DEPTH, too_deep

log = logging.getLogger("robutler.server")

Send = Any
Receive = Any

_encoder = msgspec.json.Encoder()
encode = _encoder.encode

JSON_HEADERS = [(b"content-type", b"application/json")]


def _headers(extra: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    headers = list(JSON_HEADERS)
    if extra:
        headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())
    return headers


async def send_json(
    send: Send, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> None:
    """Send a complete JSON response."""
    raw = _headers(headers)
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: RequestError) -> None:
    """Send ``error`` as an OpenAI-shaped body with its status and headers."""
    await send_json(send, error.status, encode(error.to_body()), error.headers)


def internal_error(exc: BaseException) -> RequestError:
    """An unexpected exception as a 500 that says what failed, without a traceback."""
    log.error("unhandled error: %r", exc, exc_info=exc)
    error = RequestError(
        f"internal error ({type(exc).__name__}); the server log has the details",
        status=500,
        code="internal_error",
    )
    error.type = "server_error"  # type: ignore[misc]
    return error


async def read_body(scope: Mapping[str, Any], receive: Receive, limit: int) -> bytes:
    """Read the whole request body; ``PayloadTooLarge`` (413) past ``limit`` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge(
                f"request body of {int(value)} bytes is over the limit of {limit} bytes "
                "(server.max_body_bytes)"
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected while sending the body")
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise PayloadTooLarge(
                f"request body is over the limit of {limit} bytes (server.max_body_bytes)"
            )
        chunks.append(body)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_PATH = re.compile(r" - at `\$\.?(.*)`$")


def decode_error(exc: msgspec.MsgspecError, what: str) -> BadRequest:
    """A 400 for a body msgspec could not decode, naming the field at fault."""
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        match = _PATH.search(text)
        param = match.group(1) if match else None
        message = _PATH.sub("", text)
        where = f" at {param}" if param else ""
        return BadRequest(f"invalid {what}: {message}{where}", param=param, code="invalid_type")
    return BadRequest(
        f"the request body is not valid JSON ({text}); send a JSON object",
        code="invalid_json",
    )


def check_depth(document: bytes | str, what: str, *, field: str | None = None) -> None:
    """A 400 naming the field when ``document`` nests deeper than ``MAX_JSON_DEPTH``."""
    where = too_deep(document)
    if where is None:
        return
    if field is not None:
        where = f"{field}.{where}" if where and not where.startswith("[") else f"{field}{where}"
    param = re.split(r"[.\[]", where, maxsplit=1)[0] or None
    raise BadRequest(
        f"invalid {what}: JSON nested deeper than {MAX_JSON_DEPTH} levels"
        + (f" at {where}" if where else "")
        + "; flatten it",
        param=param,
        code="json_too_deep",
    )

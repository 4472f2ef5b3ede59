"""Reading credentials from request headers, and the 401/403 answers (RFC 6750).

A caller sends ``Authorization: Bearer <api key or JWT>`` (what every OpenAI client
sends) or ``X-API-Key: <key>``. :func:`credentials` returns the token, ``None`` when there
is none, and raises :class:`~robutler_specs.Unauthorized` (never anything else) when the
headers are malformed. Tokens are never echoed in messages: they are secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from robutler_specs import Forbidden, Unauthorized

#: The longest token accepted. Real API keys and JWTs are far shorter; the cap keeps a
#: hostile header from costing a hash or a JWT parse of megabytes.
MAX_TOKEN_LENGTH = 8192

#: What a token may contain: visible ASCII, no spaces. A superset of RFC 6750's
#: ``b64token`` so that API keys with ``:`` or ``!`` still work.
TOKEN_RE = re.compile(r"[\x21-\x7e]+")

_SCHEME_RE = re.compile(r"(\S+)(?:[ \t]+(.*))?", re.DOTALL)

HOW_TO = "send 'Authorization: Bearer <api key or token>' (or 'X-API-Key: <api key>')"


def challenge(realm: str, error: str | None = None, description: str | None = None, **params: str) -> str:
    """A ``WWW-Authenticate`` value: ``Bearer realm="..."`` plus RFC 6750 error fields."""
    parts = [f'realm="{_quote(realm)}"']
    if error:
        parts.append(f'error="{_quote(error)}"')
    if description:
        parts.append(f'error_description="{_quote(description)}"')
    parts.extend(f'{k}="{_quote(v)}"' for k, v in params.items())
    return "Bearer " + ", ".join(parts)


def _quote(text: str) -> str:
    # RFC 6750 limits error_description to %x20-21 / %x23-5B / %x5D-7E: no quote, no
    # backslash, ASCII only. Anything else is replaced rather than escaped.
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "'" if c == '"' else "?" for c in text)


def unauthorized(
    message: str, *, realm: str, code: str = "invalid_api_key", error: str | None = "invalid_token"
) -> Unauthorized:
    """A 401 with a ``WWW-Authenticate`` challenge.

    ``error=None`` gives the bare challenge RFC 6750 prescribes for a request that had no
    credentials at all.
    """
    return Unauthorized(
        message,
        code=code,
        headers={"WWW-Authenticate": challenge(realm, error, message if error else None)},
    )


def forbidden(message: str, *, realm: str, scope: str) -> Forbidden:
    """A 403 for a known caller whose scope is too low (RFC 6750 ``insufficient_scope``)."""
    return Forbidden(
        message,
        code="insufficient_scope",
        headers={"WWW-Authenticate": challenge(realm, "insufficient_scope", message, scope=scope)},
    )


def _malformed(message: str, realm: str) -> Unauthorized:
    return unauthorized(message, realm=realm, code="invalid_request", error="invalid_request")


def _token(raw: str, where: str, realm: str) -> str:
    if len(raw) > MAX_TOKEN_LENGTH:
        raise _malformed(f"the {where} is longer than {MAX_TOKEN_LENGTH} characters; {HOW_TO}", realm)
    if not TOKEN_RE.fullmatch(raw):
        raise _malformed(
            f"the {where} contains characters a key or token cannot have (spaces, control "
            f"or non-ASCII characters); {HOW_TO}",
            realm,
        )
    return raw


def bearer(value: str, realm: str = "robutler") -> str | None:
    """The token of an ``Authorization`` header value; ``None`` when it is empty.

    ``Bearer`` is matched case-insensitively and surrounding blanks are ignored. An empty
    token (``Bearer`` alone, as an OpenAI client configured with ``api_key=""`` sends) is
    no credential at all.
    """
    value = value.strip(" \t")
    if not value:
        return None
    match = _SCHEME_RE.fullmatch(value)
    # Anything that is not blank and does not parse is refused, never taken for "no
    # credentials": a garbled header must not turn a caller into an anonymous one.
    if match is None or match.group(1).lower() != "bearer":
        raise _malformed(f"the Authorization header must use the Bearer scheme; {HOW_TO}", realm)
    rest = (match.group(2) or "").strip(" \t")
    return _token(rest, "bearer token", realm) if rest else None


def credentials(headers: Mapping[str, str], realm: str = "robutler") -> str | None:
    """The caller's token from ``Authorization`` or ``X-API-Key`` (lower-case names).

    :return: the token, or ``None`` when the request carries no credentials.
    :raises Unauthorized: the headers are malformed, or carry two different credentials.
    """
    auth = headers.get("authorization")
    token = bearer(auth, realm) if auth is not None else None
    raw_key = headers.get("x-api-key")
    key = raw_key.strip(" \t") if raw_key is not None else ""
    if key:
        key = _token(key, "X-API-Key header", realm)
        if token is not None and token != key:
            raise _malformed(
                "the request carries two different credentials (Authorization and X-API-Key); send one",
                realm,
            )
        token = key
    return token


__all__ = [
    "HOW_TO",
    "MAX_TOKEN_LENGTH",
    "bearer",
    "challenge",
    "credentials",
    "forbidden",
    "unauthorized",
]

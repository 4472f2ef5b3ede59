"""The optional remote identity check: ask a portal whether a token is valid.

``GET {portal_url}/api/auth/validate`` with the caller's ``Authorization: Bearer <token>``.
The portal answers:

- ``200`` with a JSON object ``{"user_id": "...", "scopes": [...]}`` (``sub`` and a
  space-separated ``scope`` are accepted too; ``"valid": false`` means rejected; every other
  field becomes ``ctx.identity.attributes``): the token is good;
- ``401`` or ``403``: the token is not good (the caller gets a 401);
- anything else, a timeout or no answer: the portal is down (the caller gets a 503 naming
  ``portal_url``). Fail closed: no portal, no entry.

Answers (good and bad) are cached per token for ``portal_cache_ttl`` seconds, so a burst
of requests with one token costs one portal call; concurrent misses share one call. A
token revoked at the portal therefore keeps working for up to that long.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from robutler_specs import ServiceUnavailable, Unauthorized

from .headers import unauthorized

VALIDATE_PATH = "/api/auth/validate"


@dataclass(frozen=True)
class PortalIdentity:
    """What the portal said about a token."""

    user_id: str
    scopes: tuple[str, ...]
    attributes: dict[str, Any] = field(default_factory=dict)


class TTLCache:
    """A small LRU cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        self._data: OrderedDict[bytes, tuple[float, Any]] = OrderedDict()

    def get(self, key: bytes) -> Any:
        """The value stored under ``key``, or ``None`` when absent or expired."""
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def put(self, key: bytes, value: Any) -> None:
        """Store ``value`` (nothing when the TTL or the size is 0)."""
        if self.ttl <= 0 or self.size <= 0:
            return
        self._data[key] = (time.monotonic() + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class Portal:
    """Validates tokens at a portal, with a timeout, a TTL cache and shared in-flight calls.

    :param url: the portal's base URL (``portal_url``).
    :param timeout: seconds one call may take.
    :param ttl: seconds an answer is reused.
    :param size: how many answers are kept.
    :param realm: the realm for 401 challenges.
    """

    def __init__(self, url: str, *, timeout: float, ttl: float, size: int, realm: str = "robutler") -> None:
        self.url = url.rstrip("/")
        self.validate_url = self.url + VALIDATE_PATH
        self.timeout = timeout
        self.realm = realm
        self.cache = TTLCache(ttl, size)
        self.calls = 0  #: portal calls made (cache misses), for tests and metrics
        self._inflight: dict[bytes, asyncio.Task[PortalIdentity | Unauthorized]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._loop = loop
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def verify(self, token: str) -> PortalIdentity:
        """The identity the portal gives ``token``.

        :raises Unauthorized: the portal rejected it.
        :raises ServiceUnavailable: the portal did not answer properly.
        """
        # Keyed by digest: the cache holds no tokens.
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        answer = self.cache.get(key)
        if answer is None:
            task = self._inflight.get(key)
            if task is None:
                task = asyncio.ensure_future(self._ask(token))
                self._inflight[key] = task
                task.add_done_callback(lambda t: self._settled(key, t))
            # shield: one waiter going away (client disconnect) must not cancel the
            # call the others are waiting for.
            answer = await asyncio.shield(task)
            self.cache.put(key, answer)
        if isinstance(answer, Unauthorized):
            raise unauthorized(answer.message, realm=self.realm, code=answer.code)
        assert isinstance(answer, PortalIdentity)
        return answer

    def _settled(self, key: bytes, task: asyncio.Task[Any]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a call nobody awaits any more logs nothing

    def _down(self, reason: str, what: str = "could not validate the token") -> ServiceUnavailable:
        return ServiceUnavailable(
            f"the auth portal at {self.url} {what} ({reason}); "
            "check skills.auth.portal_url and that the portal is up",
            code="auth_portal_unavailable",
        )

    async def _ask(self, token: str) -> PortalIdentity | Unauthorized:
        self.calls += 1
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            async with self._client().get(self.validate_url, headers=headers) as reply:
                if reply.status in (401, 403):
                    return Unauthorized("the auth portal does not accept this token", code="invalid_token")
                if reply.status != 200:
                    raise self._down(f"HTTP {reply.status}")
                try:
                    body = await reply.json(content_type=None)
                except ValueError:
                    raise self._down("its answer is not JSON") from None
        except TimeoutError:
            raise self._down(f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise self._down(f"{type(exc).__name__}: {exc}") from None
        return self._identity(body)

    def _identity(self, body: Any) -> PortalIdentity | Unauthorized:
        if not isinstance(body, dict):
            raise self._down("its answer is not a JSON object")
        if body.get("valid", True) is not True:
            return Unauthorized("the auth portal does not accept this token", code="invalid_token")
        user = body.get("user_id", body.get("sub"))
        if not isinstance(user, str) or not user:
            raise self._down("its answer has no user_id")
        raw = body.get("scopes", body.get("scope", []))
        values = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        # As with JWTs, "owner" is granted by the agent (user_id == owner), not claimed.
        scopes = tuple(dict.fromkeys(["all", *(v for v in values if v == "admin")]))
        extra = {k: v for k, v in body.items() if k not in ("valid", "user_id", "sub", "scopes", "scope")}
        return PortalIdentity(user, scopes, extra)

    async def ping(self) -> str:
        """A health check: the portal answers HTTP at all (any status below 500)."""
        try:
            async with self._client().get(self.validate_url) as reply:
                status = reply.status
        except TimeoutError:
            raise self._down(f"no answer within {self.timeout:g} s", "does not answer") from None
        except aiohttp.ClientError as exc:
            raise self._down(f"{type(exc).__name__}: {exc}", "does not answer") from None
        if status >= 500:
            raise self._down(f"HTTP {status}", "does not answer")
        return f"HTTP {status}"


__all__ = ["VALIDATE_PATH", "Portal", "PortalIdentity", "TTLCache"]

"""The registry service: validates registrations, applies ownership and expiry, turns
backend failures into 503s. Time comes from an injectable clock (``time.time`` by default),
so tests move it instead of sleeping."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec

from robutler_specs import (
    BadRequest,
    Forbidden,
    Identity,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
)

from ..config import RegistryConfig, check_base_url
from .backend import Backend, Registration

T = TypeVar("T")

#: A registrable agent name: what a kernel accepts as an agent's URL path segment.
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME)

#: The most registrations one search reads.
MAX_LISTED = 10_000


class RegistrationRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /{agent}/agents/register``.

    :ivar name: the agent's name, unique in the registry.
    :ivar url: the agent's base URL (``https://host/agent``).
    :ivar description: one line about it.
    :ivar intents: what it can do.
    :ivar ttl: seconds the registration lives; default the registry's ``default_ttl``.
    """

    name: Annotated[str, msgspec.Meta(pattern=NAME)]
    url: Annotated[str, msgspec.Meta(max_length=2048)]
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    intents: Annotated[list[Annotated[str, msgspec.Meta(max_length=200)]], msgspec.Meta(max_length=32)] = []
    ttl: Annotated[float, msgspec.Meta(gt=0)] | None = None


def make_backend(config: RegistryConfig) -> Backend:
    """The configured backend (drivers are imported only when chosen)."""
    if config.backend == "postgres":
        from .postgres import PostgresBackend

        return PostgresBackend(config.resolved_dsn or "", config.table, timeout=config.timeout)
    from .sqlite import SQLiteBackend

    return SQLiteBackend(config.path, config.table, timeout=config.timeout)


def parse_registration(body: Any) -> RegistrationRequest:
    """The request body as a :class:`RegistrationRequest`, or a 400 naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object: {\"name\", \"url\", \"description\", \"intents\", \"ttl\"}")
    try:
        request = msgspec.convert(body, RegistrationRequest)
    except msgspec.ValidationError as exc:
        field = re.search(r"at `\$\.(\w+)", str(exc))
        raise BadRequest(f"invalid registration: {exc}", param=field.group(1) if field else None) from None
    try:
        request.url = check_base_url(request.url, "url")
    except ValueError as exc:
        raise BadRequest(str(exc), param="url") from None
    return request


class Registry:
    """Registrations with owners and expiry, over a :class:`Backend`.

    Who may change a registration: the identity (``user_id``) that made it, while it
    lives; an admin (``admin`` scope) at any time; anyone once it has lapsed.

    :param backend: where registrations are kept.
    :param config: ttl limits, per-owner cap, timeout.
    :param clock: seconds since the epoch (injectable for tests).
    """

    def __init__(self, backend: Backend, config: RegistryConfig, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.config = config
        self.clock = clock
        self._open = False
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """The health check name."""
        return f"discovery:registry:{self.backend.kind}:{self.backend.label}"

    def _unavailable(self, reason: str) -> ServiceUnavailable:
        setting = "plugins.discovery.registry." + ("dsn" if self.backend.kind == "postgres" else "path")
        return ServiceUnavailable(
            f"the agent registry ({self.backend.kind}, {self.backend.label}) is unavailable: {reason}; check {setting}",
            code="registry_unavailable",
            plugin="discovery",
        )

    async def _call(self, op: Callable[[Backend], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.config.timeout):
                if not self._open:
                    async with self._lock:
                        if not self._open:
                            await self.backend.open()
                            self._open = True
                return await op(self.backend)
        except TimeoutError:
            raise self._unavailable(f"it did not answer within {self.config.timeout:g} s") from None
        except Exception as exc:
            if self.backend.is_backend_error(exc):
                raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
            raise

    async def start(self) -> None:
        """Open the backend now (a failure surfaces as 503 on use, and is tried again then)."""
        try:
            await self._call(lambda b: b.ping())
        except ServiceUnavailable:
            pass

    async def stop(self) -> None:
        """Close the backend."""
        async with self._lock:
            if self._open:
                self._open = False
                await self.backend.close()

    async def check(self) -> dict[str, Any]:
        """The health check: ``SELECT 1``."""
        await self._call(lambda b: b.ping())
        return {"backend": self.backend.kind, "location": self.backend.label}

    async def register(self, request: RegistrationRequest, identity: Identity) -> Registration:
        """Publish (or renew) ``request`` as ``identity``.

        :raises BadRequest: ``ttl`` above ``max_ttl``.
        :raises Forbidden: another identity holds the name.
        :raises RateLimited: the identity holds ``max_per_owner`` registrations already.
        """
        owner = _owner(identity)
        ttl = self.config.default_ttl if request.ttl is None else request.ttl
        if ttl > self.config.max_ttl:
            raise BadRequest(f"ttl {ttl:g} is above this registry's max_ttl of {self.config.max_ttl:g} seconds",
                             param="ttl")
        now = self.clock()
        reg = Registration(request.name, request.url, request.description, tuple(request.intents), owner, now + ttl)
        admin = identity.allows("admin")
        limit = self.config.max_per_owner
        outcome = await self._call(lambda b: b.upsert(reg, now=now, admin=admin, max_per_owner=limit))
        if outcome == "taken":
            raise Forbidden(f"the name {request.name!r} is registered by another identity until it expires",
                            code="registration_taken")
        if outcome == "full":
            raise RateLimited(f"{owner!r} already holds {limit} registrations, the most allowed; remove one first",
                              code="too_many_registrations")
        stored = await self._call(lambda b: b.get(reg.name, now=now))
        return stored or reg

    async def deregister(self, name: str, identity: Identity) -> None:
        """Remove registration ``name``.

        :raises NotFound: no live registration of that name.
        :raises Forbidden: another identity holds it.
        """
        owner = _owner(identity)
        admin = identity.allows("admin")
        now = self.clock()
        outcome = await self._call(lambda b: b.delete(name, owner=owner, admin=admin, now=now))
        if outcome == "missing":
            raise NotFound(f"no registration named {name!r}", code="registration_not_found")
        if outcome == "forbidden":
            raise Forbidden(f"the registration {name!r} belongs to another identity", code="not_owner")

    async def live(self) -> list[Registration]:
        """Every live registration, by name (lapsed rows are purged on the way)."""
        now = self.clock()
        await self._call(lambda b: b.purge(now=now))
        regs = await self._call(lambda b: b.live(now=now, limit=MAX_LISTED))
        return sorted(regs, key=lambda r: r.name)


def _owner(identity: Identity) -> str:
    """Whose registration this is; anonymous callers may not register."""
    if identity.user_id is None:
        raise Unauthorized(
            "registering agents needs credentials: send Authorization: Bearer <key> that this "
            "agent's auth skill accepts",
            headers={"WWW-Authenticate": 'Bearer realm="robutler"'},
        )
    return identity.user_id

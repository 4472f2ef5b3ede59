"""Settings: the kernel-wide ``plugins.discovery`` section and the per-agent skill config.

Every key and its default is in ``docs/plugins/discovery.md``.
"""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import urlsplit

import msgspec

#: A table name: ``name`` or ``schema.name`` (schema: PostgreSQL only). Identifiers cannot be
#: SQL parameters, so they are restricted to characters that never need quoting.
TABLE_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]{0,47}\.)?[A-Za-z_][A-Za-z0-9_]{0,47}$")


def check_base_url(url: str, what: str) -> str:
    """``url`` without a trailing slash, or ``ValueError`` naming ``what`` when it is not
    an ``http(s)://host...`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} {url!r} must be an http:// or https:// URL with a host")
    return url.rstrip("/")


class RegistryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """This kernel acts as a registry (``plugins.discovery.registry``).

    :ivar backend: ``sqlite`` (embedded, the default) or ``postgres`` (several replicas).
    :ivar path: the SQLite file (``sqlite`` only).
    :ivar dsn: the PostgreSQL DSN (``postgres`` only); default ``$DATABASE_URL``.
    :ivar table: the table; ``schema.table`` on PostgreSQL (the schema is created too).
    :ivar default_ttl: seconds a registration lives when the request names no ``ttl``.
    :ivar max_ttl: the longest ``ttl`` accepted, in seconds.
    :ivar max_per_owner: live registrations one identity may hold.
    :ivar timeout: seconds one backend operation (and connecting) may take.
    """

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = "./robutler-registry.db"
    dsn: str | None = None
    table: str = "robutler_registry"
    default_ttl: float = 300.0
    max_ttl: float = 86400.0
    max_per_owner: int = 1000
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not TABLE_NAME.match(self.table):
            raise ValueError(
                f"registry.table {self.table!r} must be a plain SQL identifier (letters, digits, _), "
                "optionally schema-qualified: 'agents' or 'app.agents'"
            )
        if self.backend == "sqlite" and "." in self.table:
            raise ValueError("registry.table: a schema-qualified name needs backend: postgres")
        if self.backend == "postgres" and not self.resolved_dsn:
            raise ValueError("registry.backend postgres needs `dsn` (or the DATABASE_URL environment variable)")
        if not 0 < self.default_ttl <= self.max_ttl:
            raise ValueError("registry: need 0 < default_ttl <= max_ttl")
        if self.max_per_owner < 1 or self.timeout <= 0:
            raise ValueError("registry: max_per_owner must be at least 1 and timeout positive")

    @property
    def resolved_dsn(self) -> str | None:
        """``dsn``, else ``$DATABASE_URL``."""
        return self.dsn or os.environ.get("DATABASE_URL") or None


class AnnounceConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Publish this kernel's agents to a registry (``plugins.discovery.announce``).

    :ivar registry_url: the registry kernel's base URL; default the top-level ``registry_url``.
    :ivar agent: the registry kernel's agent whose ``auth`` skill admits this kernel
        (registrations go to ``{registry_url}/{agent}/agents/register``).
    :ivar api_key: the credential sent as ``Authorization: Bearer``.
    :ivar ttl: seconds each registration lives at the registry.
    :ivar interval: seconds between renewals; default a third of ``ttl``.
    :ivar retry_interval: seconds before trying again after a failed round (at most ``interval``).
    :ivar agents: the agents to announce; default every agent of the config.
    :ivar deregister: remove the registrations when the kernel stops.
    """

    registry_url: str | None = None
    agent: str = "registry"
    api_key: str | None = None
    ttl: float = 300.0
    interval: float | None = None
    retry_interval: float = 10.0
    agents: list[str] | None = None
    deregister: bool = True

    def __post_init__(self) -> None:
        if self.registry_url is not None:
            self.registry_url = check_base_url(self.registry_url, "announce.registry_url")
        if self.ttl <= 0:
            raise ValueError("announce.ttl must be positive")
        if self.interval is not None and not 0 < self.interval < self.ttl:
            raise ValueError("announce.interval must be positive and shorter than announce.ttl")
        if self.retry_interval <= 0:
            raise ValueError("announce.retry_interval must be positive")

    @property
    def every(self) -> float:
        """Seconds between renewals."""
        return self.interval if self.interval is not None else self.ttl / 3


class DiscoverySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``plugins.discovery`` section (``robutler-kernel check`` validates it).

    :ivar public_url: this kernel's base URL as others reach it; local agents are listed
        with ``{public_url}/{name}`` and announced with it.
    :ivar peers: base URLs of other kernels ``discover_agents`` searches.
    :ivar registry_url: a registry kernel's base URL ``discover_agents`` searches.
    :ivar timeout: seconds one call to a peer or the registry may take.
    :ivar max_response_bytes: the largest answer read from a peer or the registry.
    :ivar ranking: ``auto`` (vectors when an embedding plugin answers, else lexical) or
        ``lexical`` (never embed).
    :ivar embed_model: the ``<provider>/<model>`` asked for embeddings; ``None`` for any.
    :ivar min_similarity: vector ranking drops agents whose cosine similarity is not above it.
    :ivar default_top_k: how many agents ``GET /agents`` returns without ``top_k``.
    :ivar max_top_k: the most ``top_k`` may ask for.
    :ivar registry: make this kernel a registry; ``None`` (the default) for not.
    :ivar announce: announce this kernel's agents to a registry; ``None`` for not.
    """

    public_url: str | None = None
    peers: list[str] = []
    registry_url: str | None = None
    timeout: float = 5.0
    max_response_bytes: int = 1_000_000
    ranking: Literal["auto", "lexical"] = "auto"
    embed_model: str | None = None
    min_similarity: float = 0.0
    default_top_k: int = 50
    max_top_k: int = 200
    registry: RegistryConfig | None = None
    announce: AnnounceConfig | None = None

    def __post_init__(self) -> None:
        if self.public_url is not None:
            self.public_url = check_base_url(self.public_url, "public_url")
        if self.registry_url is not None:
            self.registry_url = check_base_url(self.registry_url, "registry_url")
        self.peers = [check_base_url(peer, f"peers[{i}]") for i, peer in enumerate(self.peers)]
        if self.timeout <= 0 or self.max_response_bytes < 1024:
            raise ValueError("timeout must be positive and max_response_bytes at least 1024")
        if not 1 <= self.default_top_k <= self.max_top_k:
            raise ValueError("need 1 <= default_top_k <= max_top_k")
        if not -1.0 <= self.min_similarity < 1.0:
            raise ValueError("min_similarity must be in [-1, 1)")
        if self.announce is not None:
            if (self.announce.registry_url or self.registry_url) is None:
                raise ValueError("announce needs a registry: set announce.registry_url or registry_url")
            if self.public_url is None:
                raise ValueError("announce needs public_url: the base URL other kernels reach this one at")

    @property
    def announce_url(self) -> str | None:
        """The registry announced to."""
        if self.announce is None:
            return None
        return self.announce.registry_url or self.registry_url


class DiscoveryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Config of the ``discovery`` skill (``agents.<agent>.skills.discovery``).

    :ivar local: ``discover_agents`` searches this kernel's agents.
    :ivar peers: ``discover_agents`` searches the configured peers.
    :ivar registry: ``discover_agents`` searches the configured registry.
    :ivar max_top_k: the most agents one ``discover_agents`` call returns.
    """

    local: bool = True
    peers: bool = True
    registry: bool = True
    max_top_k: int = 20

    def __post_init__(self) -> None:
        if self.max_top_k < 1:
            raise ValueError("max_top_k must be at least 1")

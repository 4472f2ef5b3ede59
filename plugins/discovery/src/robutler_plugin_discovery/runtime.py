"""One kernel's discovery: its settings, HTTP session, registry, announcer and ranker.

Made by ``robutler_startup`` and kept in ``kernel.state`` (never a module global), so
several kernels in one process each have their own; the routes and the skill find it there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import msgspec

from robutler_specs import ConfigError, KernelAPI, ServiceUnavailable

from .announce import Announcer
from .config import DiscoverySettings
from .entries import LOCAL, REGISTRY, AgentEntry, local_entry
from .peers import PeerError, fetch_listing
from .registry import Registry, make_backend
from .search import Ranker

log = logging.getLogger("robutler.plugins.discovery")

#: Where the runtime lives in ``kernel.state``.
STATE_KEY = "discovery"


def parse_settings(raw: Mapping[str, Any]) -> DiscoverySettings:
    """``plugins.discovery`` validated, or a :class:`ConfigError` naming the problem."""
    try:
        return msgspec.convert(dict(raw), DiscoverySettings)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"plugins.discovery: {exc}") from None


class Discovery:
    """Discovery for one kernel.

    :param kernel: the kernel.
    :param settings: the ``plugins.discovery`` section.
    """

    def __init__(self, kernel: KernelAPI, settings: DiscoverySettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.ranker = Ranker(kernel, use_vectors=settings.ranking == "auto", model=settings.embed_model,
                             min_similarity=settings.min_similarity)
        self.registry = Registry(make_backend(settings.registry), settings.registry) if settings.registry else None
        self.session: aiohttp.ClientSession | None = None
        self.announcer: Announcer | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and the registry; start announcing."""
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            headers={"User-Agent": "robutler-plugin-discovery"},
        )
        if self.registry is not None:
            await self.registry.start()
        announce, url = self.settings.announce, self.settings.announce_url
        if announce is not None and url is not None and self.settings.public_url is not None:
            names = announce.agents if announce.agents is not None else list(self.kernel.agents)
            unknown = [n for n in names if n not in self.kernel.agents]
            if unknown:
                raise ConfigError(f"plugins.discovery.announce.agents: no agent named {', '.join(map(repr, unknown))}")
            self.announcer = Announcer(
                self.session, announce, registry_url=url, public_url=self.settings.public_url,
                agents=[self.kernel.agents[n] for n in names], timeout=self.settings.timeout,
            )
            self.announcer.start()

    async def stop(self) -> None:
        """Stop announcing (removing the registrations), close the registry and session."""
        if self.announcer is not None:
            await self.announcer.stop()
        if self.registry is not None:
            await self.registry.stop()
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- searching -----------------------------------------------------------------------

    def local_entries(self) -> list[AgentEntry]:
        """This kernel's agents."""
        return [local_entry(spec, self.settings.public_url) for spec in self.kernel.agents.values()]

    async def registry_entries(self) -> list[AgentEntry]:
        """The live registrations, when this kernel is a registry."""
        if self.registry is None:
            return []
        live = await self.registry.live()
        now = self.registry.clock()
        return [
            AgentEntry(name=r.name, description=r.description, intents=r.intents, url=r.url, source=REGISTRY,
                       expires_in=max(0.0, round(r.expires_at - now, 3)))
            for r in live
        ]

    async def search(self, query: str, top_k: int) -> list[tuple[AgentEntry, float]]:
        """This kernel's agents and (on a registry) the registered ones, ranked for ``query``.
        A registration whose URL is a local agent's is listed once, as local."""
        local = self.local_entries()
        urls = {e.url for e in local if e.url}
        entries = local + [e for e in await self.registry_entries() if e.url not in urls]
        return await self.ranker.rank(entries, query, top_k)

    async def remote(self, base_url: str, query: str, top_k: int, source: str) -> list[AgentEntry]:
        """Another kernel's search answer (see :func:`.peers.fetch_listing`)."""
        if self.session is None:
            raise ServiceUnavailable("discovery has not started", plugin="discovery")
        return await fetch_listing(
            self.session, base_url, query, top_k, source=source,
            timeout=self.settings.timeout, max_bytes=self.settings.max_response_bytes,
        )

    async def discover(
        self, query: str, top_k: int, *, local: bool = True, peers: bool = True, registry: bool = True,
        exclude: str | None = None,
    ) -> dict[str, Any]:
        """Search this kernel, the peers and the registry at once; the ``discover_agents``
        answer. Scores of different servers are not comparable, so the lists are merged
        rank by rank (each source's best first, then each one's second...), each URL once,
        cut at ``top_k``. A peer that fails is logged and named under ``skipped``."""
        lists: list[list[AgentEntry]] = []
        skipped: list[str] = []
        if local:
            found = await self.search(query, top_k + 1)
            lists.append([e for e, _ in found if not (e.source == LOCAL and e.name == exclude)])
        remotes: list[tuple[str, str]] = []
        if peers:
            remotes += [(url, url) for url in self.settings.peers]
        if registry and self.settings.registry_url:
            remotes.append((self.settings.registry_url, REGISTRY))
        answers = await asyncio.gather(
            *(self.remote(url, query, top_k, source) for url, source in remotes), return_exceptions=True
        )
        for (url, _), answer in zip(remotes, answers, strict=True):
            if isinstance(answer, PeerError):
                log.warning("discovery: skipping %s: %s", url, answer)
                skipped.append(f"{url}: {answer}")
            elif isinstance(answer, BaseException):
                log.error("discovery: searching %s failed", url, exc_info=answer)
                skipped.append(f"{url}: {type(answer).__name__}")
            else:
                lists.append(answer)
        merged = interleave(lists, top_k)
        result: dict[str, Any] = {"query": query, "agents": [tool_view(e) for e in merged]}
        if skipped:
            result["skipped"] = skipped
        if not merged:
            result["note"] = "no agent matches; try other words"
        return result


def interleave(lists: list[list[AgentEntry]], top_k: int) -> list[AgentEntry]:
    """Round-robin over ranked lists, each URL (or local name) once, at most ``top_k``."""
    seen: set[str] = set()
    merged: list[AgentEntry] = []
    for rank in range(max((len(x) for x in lists), default=0)):
        for entries in lists:
            if rank >= len(entries) or len(merged) >= top_k:
                continue
            entry = entries[rank]
            key = entry.url or f"local:{entry.name}"
            if key in seen:
                continue
            seen.add(key)
            merged.append(entry)
    return merged


def tool_view(entry: AgentEntry) -> dict[str, Any]:
    """What the model reads of an agent: compact, empty fields left out."""
    out: dict[str, Any] = {"name": entry.name, "url": entry.url or f"/{entry.name}", "source": entry.source}
    if entry.description:
        out["description"] = entry.description
    if entry.intents:
        out["intents"] = list(entry.intents)
    return out


def runtime_of(kernel: KernelAPI) -> Discovery:
    """The kernel's discovery, or a 503 before ``robutler_startup`` ran."""
    runtime = kernel.state.get(STATE_KEY)
    if not isinstance(runtime, Discovery):
        raise ServiceUnavailable("the discovery plugin has not started yet; retry", plugin="discovery")
    return runtime

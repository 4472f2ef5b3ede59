"""Announcing this kernel's agents to a registry, and renewing them before they lapse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import quote

import aiohttp

from robutler_specs import AgentSpec

from .config import AnnounceConfig

log = logging.getLogger("robutler.plugins.discovery")


class Announcer:
    """Registers ``agents`` at ``{registry_url}/{config.agent}/agents/register`` every
    ``config.every`` seconds (``retry_interval`` after a failed round) until stopped; on
    stop, removes them when ``config.deregister``.

    :param session: the kernel's HTTP session.
    :param config: the ``announce`` settings.
    :param registry_url: the registry kernel's base URL.
    :param public_url: this kernel's base URL (agents are announced as ``{public_url}/{name}``).
    :param agents: the agents to announce.
    :param timeout: seconds one call may take.
    """

    def __init__(
        self, session: aiohttp.ClientSession, config: AnnounceConfig, *, registry_url: str, public_url: str,
        agents: Sequence[AgentSpec], timeout: float,
    ) -> None:
        self.session = session
        self.config = config
        self.endpoint = f"{registry_url}/{quote(config.agent, safe='')}/agents/register"
        self.public_url = public_url
        self.agents = list(agents)
        self.timeout = timeout
        #: Completed rounds in which every agent was registered (tests and logs read it).
        self.rounds = 0
        #: Rounds in which some agent could not be registered.
        self.failures = 0
        #: The last failure, or ``None`` after a round that succeeded.
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The credential, when configured."""
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    def start(self) -> None:
        """Start announcing in the background (the first round runs at once)."""
        if self._task is None and self.agents:
            self._task = asyncio.create_task(self._run(), name="discovery-announce")

    async def stop(self) -> None:
        """Stop renewing; then remove the registrations when ``deregister`` is on."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            if self.config.deregister:
                await asyncio.gather(*(self._remove(a.name) for a in self.agents))

    async def _run(self) -> None:
        while True:
            ok = await self.announce_once()
            await asyncio.sleep(self.config.every if ok else min(self.config.retry_interval, self.config.every))

    async def announce_once(self) -> bool:
        """One round: register (or renew) every agent; whether all succeeded."""
        results = await asyncio.gather(*(self._register(a) for a in self.agents))
        errors = [r for r in results if r is not None]
        if errors:
            self.failures += 1
            self.last_error = "; ".join(errors)
            log.warning("discovery: announcing to %s failed: %s", self.endpoint, self.last_error)
            return False
        self.rounds += 1
        self.last_error = None
        return True

    async def _register(self, agent: AgentSpec) -> str | None:
        body = {
            "name": agent.name,
            "url": f"{self.public_url}/{agent.name}",
            "description": agent.description,
            "intents": list(agent.intents),
            "ttl": self.config.ttl,
        }
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.post(self.endpoint, json=body, headers=self.headers) as response:
                    if response.status == 200:
                        return None
                    return f"{agent.name}: {response.status} {(await response.text())[:300]}"
        except TimeoutError:
            return f"{agent.name}: no answer within {self.timeout:g} s"
        except aiohttp.ClientError as exc:
            return f"{agent.name}: {type(exc).__name__}: {exc}"

    async def _remove(self, name: str) -> None:
        url = f"{self.endpoint}/{quote(name, safe='')}"
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.delete(url, headers=self.headers) as response:
                    if response.status not in (200, 404):
                        log.warning("discovery: removing %r from the registry answered %s", name, response.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("discovery: removing %r from the registry failed: %s", name, exc)

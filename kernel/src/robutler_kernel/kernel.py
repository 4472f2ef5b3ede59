"""The :class:`Kernel`: plugins, agents and their lifecycle; the ASGI app for serving."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from robutler_specs import AgentSpec, ChatCompletion, ChatCompletionChunk, Message, RequestContext, StateStore

from . import network
from .agent import Agent
from .config import KernelConfig, config_from_dict, default_config
from .hooks import KernelHookCaller
from .metrics import observe_request
from .plugins import PluginRegistry
from .state_store import MemoryStateStore
from .toolrefs import load_tool

log = logging.getLogger("robutler.kernel")


class Kernel:
    """Serves agents: loads plugins, builds each agent, runs start-up and shutdown.

    :param config: a :class:`KernelConfig`, a dict of the same shape, or ``None`` for the
        default offline agent.
    :param plugins: plugins to register explicitly (modules with kernel hooks, or Skill
        classes), before discovery.
    :param discover: also load installed entry-point plugins (honours
        ``ROBUTLER_LOAD_PLUGINS`` / ``ROBUTLER_DISABLE_PLUGINS``).
    :param env: the environment to read those switches from (default ``os.environ``).
    """

    def __init__(
        self,
        config: KernelConfig | Mapping[str, Any] | None = None,
        *,
        plugins: Iterable[Any] = (),
        discover: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if config is None:
            config = default_config()
        elif not isinstance(config, KernelConfig):
            config = config_from_dict(dict(config))
        self.config = config
        self.registry = PluginRegistry()
        for plugin in plugins:
            self.registry.add(plugin)
        if discover:
            self.registry.discover(env)
        self.hooks = KernelHookCaller(self.registry.pm)
        #: Agent specs by name, for plugins (``robutler_startup(kernel)``).
        self.agents: dict[str, AgentSpec] = dict(config.agents)
        #: Free space for plugins to keep kernel-wide objects in.
        self.state: dict[str, Any] = {}
        #: The shared key-value store: in-process until a plugin provides a shared one at
        #: start-up (``robutler_state_store``).
        self.state_store: StateStore = MemoryStateStore()
        self._agents: dict[str, Agent] = {name: self.build_agent(spec) for name, spec in config.agents.items()}
        self._dynamic_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self.started = False
        self.stopping = False
        self._app: Any = None

    def build_agent(self, spec: AgentSpec) -> Agent:
        """Build an :class:`Agent`: resolve and configure its skills, load its tools."""
        skills = self.registry.build_skills(spec)
        for skill in skills:
            skill.kernel = self
        pm = self.registry.skill_manager(spec, skills)
        tools = [load_tool(ref, agent=spec.name, base_dir=self.config.base_dir) for ref in spec.tools]
        agent = Agent(spec, skills, pm, tools, kernel=self)
        agent.observers.append(observe_request)
        return agent

    # -- agents ------------------------------------------------------------------------

    def agent(self, name: str) -> Agent | None:
        """A configured (or already resolved dynamic) agent by name."""
        return self._agents.get(name)

    @property
    def agent_names(self) -> list[str]:
        """Names of every agent known so far."""
        return list(self._agents)

    async def get_agent(self, name: str) -> Agent | None:
        """An agent by name; unknown names are offered to ``robutler_resolve_agent``."""
        agent = self._agents.get(name)
        if agent is not None or not self.hooks.resolves_agents:
            return agent
        async with self._dynamic_lock:
            agent = self._agents.get(name)
            if agent is None:
                spec = await self.hooks.robutler_resolve_agent(name)
                if spec is None:
                    return None
                if not spec.name:
                    spec = AgentSpec(**{**_fields(spec), "name": name})
                agent = self.build_agent(spec)
                for skill in agent.skills:
                    await skill.start()
                self._agents[name] = agent
                self.agents[name] = spec
        return agent

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        """The ``plugins.<name>`` section of the config (``{}`` when absent)."""
        return self.config.plugins.get(name, {})

    async def embed(self, texts: Iterable[str], model: str | None = None) -> list[list[float]] | None:
        """Embed texts through the first plugin whose ``robutler_embed`` answers."""
        return await self.hooks.robutler_embed(list(texts), model, self)

    async def find_agent(self, name: str) -> AgentSpec | None:
        """The spec of agent ``name`` (configured, or resolved by a plugin), or ``None``."""
        agent = await self.get_agent(name)
        return None if agent is None else agent.spec

    async def complete_agent(
        self, name: str, messages: list[Message], *, parent: RequestContext | None = None
    ) -> ChatCompletion:
        """Run agent ``name`` on ``messages`` (for ``parent``, when given; see
        :mod:`.network`) and return its completion."""
        return await network.complete_agent(self, name, messages, parent)

    def stream_agent(
        self, name: str, messages: list[Message], *, parent: RequestContext | None = None
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """As :meth:`complete_agent`, streamed."""
        return network.stream_agent(self, name, messages, parent)

    # -- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        """Run ``robutler_startup`` and every skill's ``start()``; idempotent."""
        async with self._start_lock:
            if self.started:
                return
            await self.hooks.robutler_startup(self)
            shared = await self.hooks.robutler_state_store(self)
            if shared is not None:
                self.state_store = shared
            for agent in self._agents.values():
                for skill in agent.skills:
                    await skill.start()
            self.started = True
            self.stopping = False
            log.info("kernel started with agents: %s", ", ".join(self._agents) or "(none)")

    async def shutdown(self) -> None:
        """Stop every skill and run ``robutler_shutdown``; errors are logged."""
        if not self.started:
            return
        self.stopping = True
        for agent in self._agents.values():
            for skill in reversed(agent.skills):
                try:
                    await skill.stop()
                except Exception:
                    log.exception("skill %r of agent %r failed to stop", skill.name, agent.name)
        await self.hooks.robutler_shutdown(self)
        self.started = False

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """An ASGI lifespan context: pass it to a host app (``FastAPI(lifespan=kernel.lifespan)``)."""
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    def asgi_app(self) -> Any:
        """The kernel's Starlette app, to serve or to mount in a host ASGI app.

        Its own lifespan starts the kernel; when mounted (sub-app lifespans do not run),
        chain :meth:`lifespan` into the host's, or the kernel starts on first request.
        """
        if self._app is None:
            from .server.app import build_app

            self._app = build_app(self)
        return self._app


def _fields(spec: AgentSpec) -> dict[str, Any]:
    return {f: getattr(spec, f) for f in spec.__struct_fields__}

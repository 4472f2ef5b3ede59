"""The :class:`Kernel`: plugins, agents and their lifecycle; the ASGI app for serving."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from robutler_specs import (
    AgentSpec,
    ChatCompletion,
    ChatCompletionChunk,
    Message,
    RequestContext,
    StateStore,
    ToolResult,
    ToolSpec,
)

from . import agenttools, network
from .agent import Agent
from .config import KernelConfig, config_from_dict, default_config
from .dynamic import DynamicAgents
from .hooks import Hook, KernelHookCaller
from .metrics import observe_request
from .plugins import PluginRegistry
from .state_store import MemoryStateStore
from .toolrefs import load_tool
from .turn import Turn

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
            # Plugins that name their skills are imported when an agent needs them.
            self.registry.discover(env, lazy=True, sections=config.plugins)
        self.hooks = KernelHookCaller(self.registry.pm)
        self._plugins_seen = len(self.registry.plugins)
        #: Plugins imported after start-up (a dynamic agent needed them): started on first use.
        self._late_plugins: list[str] = []
        #: Agent specs by name, for plugins (``robutler_startup(kernel)``).
        self.agents: dict[str, AgentSpec] = dict(config.agents)
        #: Free space for plugins to keep kernel-wide objects in.
        self.state: dict[str, Any] = {}
        #: The shared key-value store: in-process until a plugin provides a shared one at
        #: start-up (``robutler_state_store``).
        self.state_store: StateStore = MemoryStateStore()
        self._agents: dict[str, Agent] = {name: self.build_agent(spec) for name, spec in config.agents.items()}
        #: Agents from ``agents_dir`` and ``robutler_resolve_agent``: loaded, reloaded, removed.
        self.dynamic = DynamicAgents(self)
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
        if len(self.registry.plugins) != self._plugins_seen:  # building it imported plugins
            new = list(self.registry.plugins)[self._plugins_seen :]
            self._plugins_seen = len(self.registry.plugins)
            self.hooks = KernelHookCaller(self.registry.pm)
            if getattr(self, "started", False):
                self._late_plugins.extend(new)
        return agent

    async def _start_late_plugins(self) -> None:
        """``robutler_startup`` of plugins imported after the kernel started."""
        names, self._late_plugins = self._late_plugins, []
        if names:
            await Hook(self.registry.pm.hook.robutler_startup).only(names).call(kernel=self)

    # -- agents ------------------------------------------------------------------------

    def agent(self, name: str) -> Agent | None:
        """A configured (or already loaded dynamic) agent by name."""
        return self._agents.get(name) or self.dynamic.loaded(name)

    @property
    def agent_names(self) -> list[str]:
        """Names of every agent loaded so far (the config's, then dynamic ones)."""
        return [*self._agents, *self.dynamic.names()]

    def listed_agent_names(self) -> list[str]:
        """The names to list (``/v1/models``, ``/agents``): the loaded agents and every
        agent file of ``agents_dir``, loaded or not."""
        names = self.agent_names
        return names + [n for n in self.dynamic.file_names() if n not in names]

    async def get_agent(self, name: str) -> Agent | None:
        """An agent by name: the config's, else a dynamic one (``agents_dir``, then
        ``robutler_resolve_agent``; see :mod:`.dynamic`).

        :raises AgentConfigError: the agent's file or spec is broken.
        """
        agent = self._agents.get(name)
        if agent is not None:
            return agent
        agent = await self.dynamic.get(name)
        if self._late_plugins:
            await self._start_late_plugins()
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

    def agent_tools(self, ctx: RequestContext) -> Mapping[str, ToolSpec]:
        """The tools of ``ctx``'s agent its caller may use (see :mod:`.agenttools`)."""
        return agenttools.agent_tools(self, ctx)

    async def call_tool(self, ctx: RequestContext, name: str, arguments: str) -> ToolResult:
        """Run tool ``name`` of ``ctx``'s agent for ``ctx`` (see :mod:`.agenttools`)."""
        return await agenttools.call_tool(self, ctx, name, arguments)

    async def run_request(self, ctx: RequestContext) -> ChatCompletion:
        """Run ``ctx``'s agent on ``ctx.messages`` inside the request ``ctx`` is (from a
        plugin route's or ``@http`` endpoint's handler; see :meth:`.turn.Turn.converse`)."""
        return await Turn.serving(ctx).converse()

    def stream_request(self, ctx: RequestContext) -> AsyncGenerator[ChatCompletionChunk, None]:
        """As :meth:`run_request`, streamed (see :meth:`.turn.Turn.converse_stream`)."""
        return Turn.serving(ctx).converse_stream()

    # -- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        """Run ``robutler_startup`` and every skill's ``start()``; idempotent."""
        async with self._start_lock:
            if self.started:
                return
            self.dynamic.startup()
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
        await self.dynamic.close()
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


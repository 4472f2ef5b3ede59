"""The :class:`Skill` base class: one per capability, instantiated per agent."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import msgspec

from .agent import AgentSpec

if TYPE_CHECKING:
    from .context import RequestContext, ToolResult
    from .store import StateStore
    from .wire import ChatCompletion, ChatCompletionChunk, Message

from .tools import HttpInfo, PromptInfo, ToolSpec, build_tool_spec, http_info, is_tool, prompt_info


class NoConfig(msgspec.Struct, forbid_unknown_fields=True):
    """The config of a skill that takes none."""


class KernelAPI(Protocol):
    """What a skill may use of the kernel that serves it (``self.kernel``).

    :ivar agents: agent name to ``AgentSpec``, for every agent known so far.
    :ivar state: a dict plugins may keep kernel-wide objects in (shared pools).
    """

    @property
    def agents(self) -> Mapping[str, AgentSpec]: ...

    @property
    def state(self) -> dict[str, Any]: ...

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        """The ``plugins.<name>`` section of the kernel config (``{}`` when absent)."""
        ...

    async def embed(self, texts: list[str], model: str | None = None) -> list[list[float]] | None:
        """Embed texts through the first plugin whose ``robutler_embed`` answers."""
        ...

    @property
    def state_store(self) -> StateStore:
        """The shared key-value store (see :mod:`robutler_specs.store`)."""
        ...

    async def find_agent(self, name: str) -> AgentSpec | None:
        """The spec of the agent called ``name`` on this kernel (configured, or resolved by a
        plugin), or ``None``."""
        ...

    async def complete_agent(
        self, name: str, messages: list[Message], *, parent: RequestContext | None = None
    ) -> ChatCompletion:
        """Run agent ``name`` of this kernel on ``messages`` and return its completion.

        With ``parent`` (the request asking), it is a request of the same caller: the
        caller's identity and headers go with it, ``X-Authorized-Amount`` is capped by
        what remains of ``parent``'s budget, the chain of agents grows (loops and depth
        beyond the target's ``max_handoff_depth`` are refused with a ``RequestError``),
        and its usage and cost are added to ``parent``'s. The target's skills and scopes
        apply; it runs its whole lifecycle (``on_connection`` ... ``finalize_connection``).
        """
        ...

    def stream_agent(
        self, name: str, messages: list[Message], *, parent: RequestContext | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        """As :meth:`complete_agent`, streamed: the target's chunks as they come."""
        ...

    async def run_request(self, ctx: RequestContext) -> ChatCompletion:
        """Run ``ctx``'s own agent on ``ctx.messages`` inside the request ``ctx`` already
        is: for the handler of a plugin route acting for an agent (``handler(request,
        ctx)``) or of an ``@http`` endpoint, which reads another protocol's request into
        ``ctx.messages`` (the A2A plugin). ``on_connection`` has run; ``finalize_connection``
        runs once the handler has answered, with the error this raised even when the
        handler answers it in its own protocol. Not a hop: the chain does not grow, and
        nothing is charged twice. ``usage.cost`` is unknown yet (a pricing skill settles in
        ``finalize_connection``; the answer's ``X-Robutler-Cost`` says it).

        :raises RuntimeError: called outside such a handler, or with another request's ctx.
        :raises RequestError: the conversation failed (a provider, a hook...).
        """
        ...

    def stream_request(self, ctx: RequestContext) -> AsyncIterator[ChatCompletionChunk]:
        """As :meth:`run_request`, the chunks as they come (a role chunk, deltas, a last
        chunk with ``finish_reason`` and ``usage``). Call it in the handler; the handler
        may return an async iterator of server-sent events rendered from them."""
        ...

    def agent_tools(self, ctx: RequestContext) -> Mapping[str, ToolSpec]:
        """The tools of ``ctx``'s agent that its caller may see and call (scopes checked
        against ``ctx.identity``; tools added with ``ctx.add_tool`` included). For a door
        that offers an agent's tools in another protocol (the MCP plugin's server)."""
        ...

    async def call_tool(self, ctx: RequestContext, name: str, arguments: str) -> ToolResult:
        """Run tool ``name`` of ``ctx``'s agent for ``ctx``, as the agent's tool loop runs
        one: scope checked, ``before_toolcall`` / ``after_toolcall``, arguments validated,
        the agent's ``tool_timeout``, a usage record. A failure is an error result; only a
        ``RequestError`` raised by a hook propagates. ``arguments`` is a JSON object."""
        ...


class Skill:
    """Base class of every skill.

    Subclass it, set ``name``, and add ``@hookimpl`` methods (the per-agent hooks of
    :mod:`robutler_specs.hookspecs`), ``@tool`` methods, ``@prompt`` methods and so on.
    A plugin module returns its Skill classes from the ``robutler_skills`` hook.

    One instance serves every request of one agent: keep per-request state in
    ``ctx.state``, not on ``self``.

    :cvar name: the config key of the skill (``skills: {payments: {...}}``).
    :cvar requires: names of skills this one needs; the kernel adds them (with default
        config) when the agent does not list them.
    :cvar Config: a msgspec Struct the skill's YAML config is validated into.
    :cvar priority: hook order; lower runs earlier (security 1-15, normal 50, analytics 80-99).
    :cvar provider: the model prefix this skill serves (``"openai"`` for
        ``model: openai/gpt-4o``), or ``None`` if it is not an LLM provider.
    :cvar description: one line for ``robutler-kernel plugins`` and agent info.
    :cvar calls_agents: the skill implements ``agent_complete`` / ``agent_stream`` (it
        reaches remote agents); the kernel adds it to agents with remote handoffs.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type[msgspec.Struct]] = NoConfig
    priority: ClassVar[int] = 50
    provider: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    calls_agents: ClassVar[bool] = False

    def __init__(self, config: Any, agent: AgentSpec) -> None:
        self.config = config
        self.agent = agent
        self._kernel: KernelAPI | None = None

    @property
    def kernel(self) -> KernelAPI:
        """The kernel serving this skill. The kernel attaches it when it builds the agent,
        before :meth:`start` and before any hook runs, so a skill in use always has one."""
        if self._kernel is None:
            raise RuntimeError(
                f"skill {self.name!r} of agent {self.agent.name!r} is not attached to a kernel: "
                "build it through a Kernel (robutler_kernel.testing.make_kernel in tests)"
            )
        return self._kernel

    @kernel.setter
    def kernel(self, kernel: KernelAPI) -> None:
        self._kernel = kernel

    async def start(self) -> None:
        """Open per-agent resources (clients, pools). Called once at kernel start-up."""

    async def stop(self) -> None:
        """Close what :meth:`start` opened. Called once at kernel shutdown."""

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """Named async checks of this skill's backends, run by ``/health/detailed`` and
        ``/ready`` (a check passes unless it raises). Checks with the same name (one
        shared backend used by several agents) run once."""
        return {}

    def describe(self) -> dict[str, Any] | None:
        """Public facts for ``GET /{agent}`` (prices, limits...), shown under the skill's
        name; ``None`` to show nothing."""
        return None

    def _members(self, predicate: Callable[[Any], Any]) -> list[tuple[str, Any]]:
        found = []
        for attr in dir(type(self)):
            if attr.startswith("__"):
                continue
            raw = inspect.getattr_static(type(self), attr, None)
            if callable(raw) and predicate(raw):
                found.append((attr, getattr(self, attr)))
        return found

    def tools(self) -> list[ToolSpec]:
        """The skill's ``@tool`` and ``@handoff`` methods, stamped with the skill name."""
        return [build_tool_spec(bound, plugin=self.name) for _, bound in self._members(is_tool)]

    def prompts(self) -> list[tuple[PromptInfo, Callable[..., Any]]]:
        """The skill's ``@prompt`` methods with their metadata."""
        return [
            (info, bound)
            for _, bound in self._members(prompt_info)
            if (info := prompt_info(bound)) is not None
        ]

    def http_endpoints(self) -> list[tuple[HttpInfo, Callable[..., Any]]]:
        """The skill's ``@http`` methods with their metadata."""
        return [
            (info, bound)
            for _, bound in self._members(http_info)
            if (info := http_info(bound)) is not None
        ]

    def __repr__(self) -> str:
        return f"<Skill {self.name!r} agent={self.agent.name!r}>"


__all__ = ["NoConfig", "Skill"]

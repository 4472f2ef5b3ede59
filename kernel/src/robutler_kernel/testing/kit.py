"""Building kernels for tests: an explicit plugin list, an ASGI client, a live server, a hook recorder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from robutler_specs import SKILL_HOOKS, AgentSpec, NotFound, Skill, hookimpl

from ..config import config_from_dict
from ..kernel import Kernel
from ..state_store import MemoryStateStore


def make_kernel(
    agents: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    plugins: Iterable[Any] = (),
    server: Mapping[str, Any] | None = None,
    discover: bool = False,
    recorder: HookRecorder | None = None,
) -> Kernel:
    """A kernel with exactly the plugins given (no entry-point discovery by default).

    :param agents: agent name to its config (the YAML shape, as a dict); default one
        ``assistant`` on ``scripted/echo``.
    :param plugins: plugin modules or Skill classes.
    :param server: ``server:`` settings.
    :param discover: also load installed plugins.
    :param recorder: a :class:`HookRecorder` added to every agent.
    """
    agents = dict(agents or {"assistant": {"model": "scripted/echo"}})
    plugins = list(plugins)
    if recorder is not None:
        plugins.append(recorder.skill)
        agents = {
            name: {**spec, "skills": {**(spec.get("skills") or {}), recorder.skill.name: None}}
            for name, spec in agents.items()
        }
    config = config_from_dict({"server": dict(server or {"metrics_port": None}), "agents": agents})
    return Kernel(config, plugins=plugins, discover=discover)


@asynccontextmanager
async def kernel_client(kernel: Kernel, base_url: str = "http://kernel") -> AsyncIterator[Any]:
    """An ``httpx.AsyncClient`` calling the kernel's ASGI app in-process, lifespan run.

    Pass it to the official client: ``AsyncOpenAI(base_url=..., http_client=client)``.
    (In-process ASGI buffers streamed responses; use :class:`LiveServer` to test
    streaming over a real socket.)
    """
    import httpx

    async with kernel.lifespan():
        transport = httpx.ASGITransport(app=kernel.asgi_app())
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as client:
            yield client


class LiveServer:
    """Serves a kernel on Hypercorn over a real loopback socket, in a background thread.

    ``with LiveServer(kernel) as server: server.url`` -> ``http://127.0.0.1:<port>``.
    """

    def __init__(self, kernel: Kernel, host: str = "127.0.0.1") -> None:
        self.kernel = kernel
        self.host = host
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> LiveServer:
        ready = threading.Event()

        def run() -> None:
            from ..serve import serve

            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()

                def on_ready(url: str) -> None:
                    self.url = url
                    ready.set()

                server = asyncio.create_task(serve(self.kernel, self.host, 0, ready=on_ready))
                await self._stop.wait()
                server.cancel()
                try:
                    await server
                except asyncio.CancelledError:
                    pass
                await self.kernel.shutdown()

            try:
                asyncio.run(main())
            except BaseException as exc:  # surfaced by __enter__
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=run, name="robutler-live-server", daemon=True)
        self._thread.start()
        if not ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the live server did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)


@dataclass
class HookCall:
    """One recorded hook call: which agent, which hook, and its arguments."""

    agent: str
    hook: str
    kwargs: dict[str, Any]


class HookRecorder:
    """Records every skill hook call of the agents it is added to (``make_kernel(recorder=)``).

    Its skill runs first (priority 0) and returns ``None`` from every hook, so it never
    changes what happens.
    """

    def __init__(self, name: str = "recorder") -> None:
        self.calls: list[HookCall] = []
        self.skill = _recorder_skill(self, name)

    def names(self, agent: str | None = None) -> list[str]:
        """Hook names in call order (optionally for one agent)."""
        return [c.hook for c in self.calls if agent is None or c.agent == agent]

    def of(self, hook: str) -> list[HookCall]:
        """The calls of one hook."""
        return [c for c in self.calls if c.hook == hook]

    def clear(self) -> None:
        """Forget what was recorded."""
        self.calls.clear()


def _recorder_skill(recorder: HookRecorder, skill_name: str) -> type[Skill]:
    def record(skill: Skill, hook: str, **kwargs: Any) -> None:
        recorder.calls.append(HookCall(skill.agent.name, hook, kwargs))

    class HookRecorderSkill(Skill):
        """Records every skill hook call; changes nothing."""

        name = skill_name
        priority = 0
        description = "records every hook call (tests)"

        @hookimpl
        def on_connection(self, ctx: Any) -> None:
            record(self, "on_connection", ctx=ctx)

        @hookimpl
        def build_prompt(self, ctx: Any) -> None:
            record(self, "build_prompt", ctx=ctx)

        @hookimpl
        def on_message(self, ctx: Any, message: Any) -> None:
            record(self, "on_message", ctx=ctx, message=message)

        @hookimpl
        def before_llm_call(self, ctx: Any, call: Any) -> None:
            record(self, "before_llm_call", ctx=ctx, call=call)

        @hookimpl
        def llm_complete(self, ctx: Any, call: Any) -> None:
            record(self, "llm_complete", ctx=ctx, call=call)

        @hookimpl
        def llm_stream(self, ctx: Any, call: Any) -> None:
            record(self, "llm_stream", ctx=ctx, call=call)

        @hookimpl
        def agent_complete(self, ctx: Any, call: Any) -> None:
            record(self, "agent_complete", ctx=ctx, call=call)

        @hookimpl
        def agent_stream(self, ctx: Any, call: Any) -> None:
            record(self, "agent_stream", ctx=ctx, call=call)

        @hookimpl
        def after_llm_call(self, ctx: Any, call: Any, result: Any) -> None:
            record(self, "after_llm_call", ctx=ctx, call=call, result=result)

        @hookimpl
        def before_toolcall(self, ctx: Any, call: Any) -> None:
            record(self, "before_toolcall", ctx=ctx, call=call)

        @hookimpl
        def after_toolcall(self, ctx: Any, call: Any, result: Any) -> None:
            record(self, "after_toolcall", ctx=ctx, call=call, result=result)

        @hookimpl
        def before_handoff(self, ctx: Any, handoff: Any) -> None:
            record(self, "before_handoff", ctx=ctx, handoff=handoff)

        @hookimpl
        def after_handoff(self, ctx: Any, handoff: Any, result: Any) -> None:
            record(self, "after_handoff", ctx=ctx, handoff=handoff, result=result)

        @hookimpl
        def on_chunk(self, ctx: Any, chunk: Any) -> None:
            record(self, "on_chunk", ctx=ctx, chunk=chunk)

        @hookimpl
        def finalize_connection(self, ctx: Any, error: Any) -> None:
            record(self, "finalize_connection", ctx=ctx, error=error)

    missing = set(SKILL_HOOKS) - set(vars(HookRecorderSkill))
    assert not missing, f"HookRecorder does not record {missing}"
    return HookRecorderSkill


class StandaloneKernel:
    """What a skill may use of a kernel (:class:`~robutler_specs.KernelAPI`), for unit
    tests of one skill outside a kernel: ``skill.kernel = StandaloneKernel()``.

    :param settings: the ``plugins:`` section (``plugin_settings(name)``).
    :param embed: answers :meth:`embed`; by default nothing embeds (``None``).
    """

    def __init__(
        self,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        embed: Callable[[list[str], str | None], Awaitable[list[list[float]] | None]] | None = None,
    ) -> None:
        self.agents: dict[str, AgentSpec] = {}
        self.state: dict[str, Any] = {}
        self.state_store = MemoryStateStore()
        self._settings = dict(settings or {})
        self._embed = embed

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        """The ``plugins.<name>`` section (``{}`` when absent)."""
        return self._settings.get(name, {})

    async def embed(self, texts: list[str], model: str | None = None) -> list[list[float]] | None:
        """The ``embed`` callable's answer, or ``None``."""
        return None if self._embed is None else await self._embed(texts, model)

    async def find_agent(self, name: str) -> AgentSpec | None:
        """An agent of :attr:`agents`, or ``None`` (no other agent runs here)."""
        return self.agents.get(name)

    async def complete_agent(self, name: str, messages: list[Any], *, parent: Any = None) -> Any:
        """No agent runs outside a kernel: a 404, as for an unknown agent."""
        raise NotFound(f"no agent named {name!r} (a StandaloneKernel runs no agents)", code="agent_not_found")

    def stream_agent(self, name: str, messages: list[Any], *, parent: Any = None) -> Any:
        """No agent runs outside a kernel: a 404, as for an unknown agent."""
        raise NotFound(f"no agent named {name!r} (a StandaloneKernel runs no agents)", code="agent_not_found")

    async def run_request(self, ctx: Any) -> Any:
        """No agent runs outside a kernel: a 404, as for an unknown agent."""
        raise NotFound(f"no agent named {ctx.agent.name!r} (a StandaloneKernel runs no agents)", code="agent_not_found")

    def stream_request(self, ctx: Any) -> Any:
        """No agent runs outside a kernel: a 404, as for an unknown agent."""
        raise NotFound(f"no agent named {ctx.agent.name!r} (a StandaloneKernel runs no agents)", code="agent_not_found")

    def agent_tools(self, ctx: Any) -> Mapping[str, Any]:
        """No agent runs outside a kernel: no tools."""
        return {}

    async def call_tool(self, ctx: Any, name: str, arguments: str) -> Any:
        """No agent runs outside a kernel: a 404, as for an unknown agent."""
        raise NotFound(f"no agent named {ctx.agent.name!r} (a StandaloneKernel runs no agents)", code="agent_not_found")

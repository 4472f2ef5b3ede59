"""The typed hook facade: one method per hook, with the spec's signature.

The kernel never names a hook as a string: it calls :class:`SkillHookCaller` (one per
agent) and :class:`KernelHookCaller` (one per kernel), whose methods mirror
:mod:`robutler_specs.hookspecs` (a meta-test holds them to the specs), so a misspelt hook or
argument is a type error.

pluggy stays the registry and validator (specs, signatures, call order) but the kernel calls
the implementations itself: pluggy is synchronous, and an ``async def`` implementation
returns a coroutine, which is never ``None``, so pluggy's own ``firstresult`` cannot work
for async hooks. :class:`Hook` awaits each result in pluggy's order and applies
``firstresult`` after awaiting. The order is fixed when the facade is built (skills are
registered in ``priority`` order), so a hook nobody implements costs one truth test.

pluggy's wrappers (``wrapper=True``, ``hookwrapper=True``) are generator functions that
pluggy drives around the other implementations; an awaiting caller cannot give them that
meaning, so they are refused when the facade is built, naming the plugin and the hook.

``ROBUTLER_TRACE_HOOKS=1`` logs every hook call (``robutler.hooks``, INFO) with its plugin
and duration.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from robutler_specs import (
    AgentCall,
    ChatCompletion,
    ChatCompletionChunk,
    LLMCall,
    LLMResult,
    Message,
    PluginError,
    RequestContext,
    RequestError,
    ToolInvocation,
    ToolResult,
)

if TYPE_CHECKING:
    from robutler_specs import AgentSpec, HttpRoute, KernelAPI, Skill, StateStore

log = logging.getLogger("robutler.hooks")

#: Set to ``1`` to log every hook call with its plugin and duration.
ENV_TRACE = "ROBUTLER_TRACE_HOOKS"

Impl = tuple[Callable[..., Any], tuple[str, ...], str]


class HookFailed(RequestError):
    """A hook implementation raised something other than a ``RequestError``.

    Rendered as a 500 ``server_error`` naming the plugin and hook, never a traceback.
    """

    status = 500
    type = "server_error"
    default_code = "hook_failed"


def tracing(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``ROBUTLER_TRACE_HOOKS`` asks for every hook call to be logged."""
    value = (os.environ if env is None else env).get(ENV_TRACE, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


class Hook:
    """The implementations of one hook, in call order, and the ways to call them.

    :param caller: pluggy's caller for the hook (``pm.hook.<name>``).
    :param trace: log every call with its plugin and duration.
    :raises PluginError: an implementation is a pluggy wrapper.
    """

    __slots__ = ("impls", "name", "trace")

    def __init__(self, caller: pluggy.HookCaller, *, trace: bool = False) -> None:
        self.name: str = caller.name
        self.trace = trace
        impls: list[Impl] = []
        # pluggy calls the last registered (and tryfirst) implementations first.
        for impl in reversed(caller.get_hookimpls()):
            if impl.wrapper or impl.hookwrapper:
                kind = "wrapper=True" if impl.wrapper else "hookwrapper=True"
                raise PluginError(
                    f"plugin {impl.plugin_name!r} implements hook {self.name} with {kind}: the "
                    "kernel awaits hook implementations one after another and does not run "
                    "pluggy wrappers; drop it, and use tryfirst=True or trylast=True to run "
                    "before or after the other implementations"
                )
            impls.append((impl.function, tuple(impl.argnames), impl.plugin_name))
        self.impls = impls

    def __bool__(self) -> bool:
        return bool(self.impls)

    def only(self, plugins: list[str]) -> Hook:
        """The same hook, with the implementations of ``plugins`` alone."""
        copy = object.__new__(Hook)
        copy.name, copy.trace = self.name, self.trace
        copy.impls = [impl for impl in self.impls if impl[2] in plugins]
        return copy

    @property
    def plugins(self) -> list[str]:
        """The plugins implementing the hook, in call order."""
        return [plugin for _, _, plugin in self.impls]

    async def _invoke(self, impl: Impl, kwargs: dict[str, Any]) -> Any:
        fn, argnames, plugin = impl
        started = time.perf_counter() if self.trace else 0.0
        try:
            result = fn(*[kwargs[a] for a in argnames])
            if inspect.isawaitable(result):
                result = await result
        except RequestError as exc:
            if exc.plugin is None:
                exc.plugin = plugin
            raise
        except Exception as exc:
            log.exception("plugin %r failed in hook %s", plugin, self.name)
            raise HookFailed(
                f"plugin {plugin!r} failed in hook {self.name}: {type(exc).__name__}: {exc}",
                plugin=plugin,
            ) from exc
        finally:
            if self.trace:
                log.info("hook %s plugin=%s %.3f ms", self.name, plugin, (time.perf_counter() - started) * 1000)
        return result

    async def call(self, **kwargs: Any) -> list[Any]:
        """Call every implementation; the non-``None`` results in call order."""
        results = []
        for impl in self.impls:
            result = await self._invoke(impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def first(self, **kwargs: Any) -> Any:
        """Call implementations until one returns non-``None``; that result (or ``None``)."""
        for impl in self.impls:
            result = await self._invoke(impl, kwargs)
            if result is not None:
                return result
        return None

    async def chain(self, key: str, **kwargs: Any) -> Any:
        """Thread ``kwargs[key]`` through every implementation: a non-``None`` result
        replaces it for the next one. Returns the final value."""
        for impl in self.impls:
            result = await self._invoke(impl, kwargs)
            if result is not None:
                kwargs[key] = result
        return kwargs[key]

    async def call_all_logged(self, **kwargs: Any) -> None:
        """Call every implementation even if some raise; errors are logged, not raised."""
        for impl in self.impls:
            try:
                await self._invoke(impl, kwargs)
            except Exception as exc:
                if isinstance(exc, RequestError) and not isinstance(exc, HookFailed):
                    log.warning("plugin %r raised in hook %s: %s", impl[2], self.name, exc.message)

    def call_by_plugin(self, **kwargs: Any) -> dict[str, Any]:
        """Call every implementation at build time (skills, routes, commands): the
        non-``None`` results by plugin name. An ``async def`` implementation, or one that
        raises, is a :class:`PluginError` naming the plugin."""
        results = {}
        for fn, argnames, plugin in self.impls:
            try:
                result = fn(*[kwargs[a] for a in argnames])
            except Exception as exc:
                raise PluginError(f"plugin {plugin!r} failed in hook {self.name}: {type(exc).__name__}: {exc}") from exc
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise PluginError(f"plugin {plugin!r}: hook {self.name} must not be async (it runs at start-up)")
            if result is not None:
                results[plugin] = result
        return results


class SkillHookCaller:
    """The per-agent hooks (:class:`~robutler_specs.SkillHooks`) of one agent's skills.

    :param pm: the agent's plugin manager (its skill instances, in call order).
    :param trace: log every call; default: ``ROBUTLER_TRACE_HOOKS``.
    """

    def __init__(self, pm: pluggy.PluginManager, *, trace: bool | None = None) -> None:
        trace = tracing() if trace is None else trace
        hook = pm.hook
        self.pm = pm
        self._on_connection = Hook(hook.on_connection, trace=trace)
        self._build_prompt = Hook(hook.build_prompt, trace=trace)
        self._on_message = Hook(hook.on_message, trace=trace)
        self._before_llm_call = Hook(hook.before_llm_call, trace=trace)
        self._llm_complete = Hook(hook.llm_complete, trace=trace)
        self._llm_stream = Hook(hook.llm_stream, trace=trace)
        self._after_llm_call = Hook(hook.after_llm_call, trace=trace)
        self._agent_complete = Hook(hook.agent_complete, trace=trace)
        self._agent_stream = Hook(hook.agent_stream, trace=trace)
        self._before_toolcall = Hook(hook.before_toolcall, trace=trace)
        self._after_toolcall = Hook(hook.after_toolcall, trace=trace)
        self._before_handoff = Hook(hook.before_handoff, trace=trace)
        self._after_handoff = Hook(hook.after_handoff, trace=trace)
        self._on_chunk = Hook(hook.on_chunk, trace=trace)
        self._finalize_connection = Hook(hook.finalize_connection, trace=trace)
        #: Whether any skill rewrites streamed chunks (checked once per chunk).
        self.rewrites_chunks = bool(self._on_chunk)

    def hooks(self) -> dict[str, Hook]:
        """Every hook by name (for ``robutler-kernel plugins``, meta-tests, debugging)."""
        return {h.name: h for h in vars(self).values() if isinstance(h, Hook)}

    # -- request stage -------------------------------------------------------------------

    async def on_connection(self, ctx: RequestContext) -> None:
        """Every ``on_connection``, in order."""
        if self._on_connection.impls:
            await self._on_connection.call(ctx=ctx)

    async def build_prompt(self, ctx: RequestContext) -> list[str]:
        """The non-empty ``build_prompt`` fragments, in order."""
        if not self._build_prompt.impls:
            return []
        return await self._build_prompt.call(ctx=ctx)

    async def on_message(self, ctx: RequestContext, message: Message) -> Message:
        """``message`` threaded through every ``on_message`` (a replacement is passed on)."""
        if not self._on_message.impls:
            return message
        result: Message = await self._on_message.chain("message", ctx=ctx, message=message)
        return result

    # -- LLM stage -----------------------------------------------------------------------

    async def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        """Every ``before_llm_call``, in order (they edit ``call`` in place)."""
        if self._before_llm_call.impls:
            await self._before_llm_call.call(ctx=ctx, call=call)

    async def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult | None:
        """The first provider's answer, or ``None`` when no skill serves ``call.model``."""
        result: LLMResult | None = await self._llm_complete.first(ctx=ctx, call=call)
        return result

    async def llm_stream(self, ctx: RequestContext, call: LLMCall) -> AsyncIterator[ChatCompletionChunk] | None:
        """The first provider's chunk stream, or ``None`` when no skill streams it."""
        result: AsyncIterator[ChatCompletionChunk] | None = await self._llm_stream.first(ctx=ctx, call=call)
        return result

    async def after_llm_call(self, ctx: RequestContext, call: LLMCall, result: LLMResult) -> None:
        """Every ``after_llm_call``, in order."""
        if self._after_llm_call.impls:
            await self._after_llm_call.call(ctx=ctx, call=call, result=result)

    # -- other agents --------------------------------------------------------------------

    async def agent_complete(self, ctx: RequestContext, call: AgentCall) -> ChatCompletion | None:
        """The first skill's answer from the remote agent, or ``None`` when none calls agents."""
        result: ChatCompletion | None = await self._agent_complete.first(ctx=ctx, call=call)
        return result

    async def agent_stream(self, ctx: RequestContext, call: AgentCall) -> AsyncIterator[ChatCompletionChunk] | None:
        """The first skill's chunk stream from the remote agent, or ``None``."""
        result: AsyncIterator[ChatCompletionChunk] | None = await self._agent_stream.first(ctx=ctx, call=call)
        return result

    # -- tool stage ----------------------------------------------------------------------

    async def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> ToolResult | None:
        """The first result that vetoes the tool call, or ``None`` to run it."""
        if not self._before_toolcall.impls:
            return None
        result: ToolResult | None = await self._before_toolcall.first(ctx=ctx, call=call)
        return result

    async def after_toolcall(self, ctx: RequestContext, call: ToolInvocation, result: ToolResult) -> ToolResult:
        """``result`` threaded through every ``after_toolcall``."""
        if not self._after_toolcall.impls:
            return result
        final: ToolResult = await self._after_toolcall.chain("result", ctx=ctx, call=call, result=result)
        return final

    async def before_handoff(self, ctx: RequestContext, handoff: ToolInvocation) -> ToolResult | None:
        """The first result that replaces the handoff, or ``None`` to run it."""
        if not self._before_handoff.impls:
            return None
        result: ToolResult | None = await self._before_handoff.first(ctx=ctx, handoff=handoff)
        return result

    async def after_handoff(self, ctx: RequestContext, handoff: ToolInvocation, result: ToolResult) -> ToolResult:
        """``result`` threaded through every ``after_handoff``."""
        if not self._after_handoff.impls:
            return result
        final: ToolResult = await self._after_handoff.chain("result", ctx=ctx, handoff=handoff, result=result)
        return final

    # -- response stage ------------------------------------------------------------------

    async def on_chunk(self, ctx: RequestContext, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        """``chunk`` threaded through every ``on_chunk``."""
        if not self._on_chunk.impls:
            return chunk
        result: ChatCompletionChunk = await self._on_chunk.chain("chunk", ctx=ctx, chunk=chunk)
        return result

    async def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        """Every ``finalize_connection``, even when some raise (logged, never raised)."""
        if self._finalize_connection.impls:
            await self._finalize_connection.call_all_logged(ctx=ctx, error=error)


class KernelHookCaller:
    """The kernel-level hooks (:class:`~robutler_specs.KernelHooks`) of the plugin modules.

    :param pm: the kernel's plugin manager (plugin modules).
    :param trace: log every call; default: ``ROBUTLER_TRACE_HOOKS``.
    """

    def __init__(self, pm: pluggy.PluginManager, *, trace: bool | None = None) -> None:
        trace = tracing() if trace is None else trace
        hook = pm.hook
        self.pm = pm
        self._robutler_skills = Hook(hook.robutler_skills, trace=trace)
        self._robutler_startup = Hook(hook.robutler_startup, trace=trace)
        self._robutler_shutdown = Hook(hook.robutler_shutdown, trace=trace)
        self._robutler_resolve_agent = Hook(hook.robutler_resolve_agent, trace=trace)
        self._robutler_health_checks = Hook(hook.robutler_health_checks, trace=trace)
        self._robutler_routes = Hook(hook.robutler_routes, trace=trace)
        self._robutler_commands = Hook(hook.robutler_commands, trace=trace)
        self._robutler_embed = Hook(hook.robutler_embed, trace=trace)
        self._robutler_state_store = Hook(hook.robutler_state_store, trace=trace)
        #: Whether a plugin resolves agents that are not in the config.
        self.resolves_agents = bool(self._robutler_resolve_agent)

    def hooks(self) -> dict[str, Hook]:
        """Every hook by name."""
        return {h.name: h for h in vars(self).values() if isinstance(h, Hook)}

    def robutler_skills(self) -> dict[str, Sequence[type[Skill]]]:
        """Each plugin's Skill classes, by plugin name."""
        return self._robutler_skills.call_by_plugin()

    async def robutler_startup(self, kernel: KernelAPI) -> None:
        """Every ``robutler_startup``, in order; the first error stops the start."""
        await self._robutler_startup.call(kernel=kernel)

    async def robutler_shutdown(self, kernel: KernelAPI) -> None:
        """Every ``robutler_shutdown``, even when some raise (logged)."""
        await self._robutler_shutdown.call_all_logged(kernel=kernel)

    async def robutler_resolve_agent(self, name: str) -> AgentSpec | None:
        """The first plugin's spec for agent ``name``, or ``None``."""
        result: AgentSpec | None = await self._robutler_resolve_agent.first(name=name)
        return result

    async def robutler_health_checks(self) -> list[Mapping[str, Callable[[], Awaitable[Any]]]]:
        """Each plugin's named health checks."""
        return await self._robutler_health_checks.call()

    def robutler_routes(self, kernel: KernelAPI) -> dict[str, Sequence[HttpRoute]]:
        """Each plugin's extra HTTP routes, by plugin name (implementations must be sync)."""
        return self._robutler_routes.call_by_plugin(kernel=kernel)

    def robutler_commands(self) -> dict[str, Mapping[str, Callable[[list[str], Mapping[str, Any]], int]]]:
        """Each plugin's CLI commands, by plugin name (implementations must be sync)."""
        return self._robutler_commands.call_by_plugin()

    async def robutler_state_store(self, kernel: KernelAPI) -> StateStore | None:
        """The first plugin's shared store, or ``None``."""
        result: StateStore | None = await self._robutler_state_store.first(kernel=kernel)
        return result

    async def robutler_embed(self, texts: list[str], model: str | None, kernel: KernelAPI) -> list[list[float]] | None:
        """The first plugin's embeddings of ``texts``, or ``None`` when none can embed."""
        result: list[list[float]] | None = await self._robutler_embed.first(texts=texts, model=model, kernel=kernel)
        return result


__all__ = ["ENV_TRACE", "Hook", "HookFailed", "KernelHookCaller", "SkillHookCaller", "tracing"]

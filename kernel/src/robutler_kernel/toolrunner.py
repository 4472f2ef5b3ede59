"""Running the model's tool calls: scope, hooks, argument validation, timeouts, threads."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from robutler_specs import (
    RequestContext,
    RequestError,
    ToolError,
    ToolInvocation,
    ToolResult,
    UsageRecord,
)

from .hooks import SkillHookCaller
from .metrics import TOOL_CALLS, TOOL_DURATION, child
from .usage import to_text

log = logging.getLogger("robutler.tools")


async def _call(inv: ToolInvocation, ctx: RequestContext, kwargs: dict[str, Any], timeout: float) -> Any:
    tool = inv.tool
    assert tool is not None
    if tool.context_param:
        kwargs[tool.context_param] = ctx
    if tool.is_async:
        return await asyncio.wait_for(tool.fn(**kwargs), timeout)
    # A sync tool runs in a worker thread; on timeout the thread cannot be killed, but
    # the request no longer waits for it.
    return await asyncio.wait_for(
        asyncio.to_thread(functools.partial(tool.fn, **kwargs)), timeout
    )


async def _run(inv: ToolInvocation, ctx: RequestContext, kwargs: dict[str, Any], timeout: float) -> ToolResult:
    tool = inv.tool
    assert tool is not None
    try:
        value = await _call(inv, ctx, kwargs, timeout)
    except RequestError:
        raise
    except TimeoutError:
        return ToolResult(
            content=f"Error: tool {inv.name!r} timed out after {timeout:g} s.",
            is_error=True,
            plugin=tool.plugin,
        )
    except ToolError as exc:
        log.info("tool %r (%s) refused: %s", inv.name, tool.plugin, exc)
        return ToolResult(content=f"Error: {exc}", is_error=True, plugin=tool.plugin)
    except Exception as exc:
        log.warning("tool %r (%s) failed: %r", inv.name, tool.plugin, exc, exc_info=True)
        return ToolResult(
            content=f"Error: tool {inv.name!r} failed: {type(exc).__name__}: {exc}",
            is_error=True,
            plugin=tool.plugin,
        )
    return ToolResult(content=to_text(value), plugin=tool.plugin)


async def run_tool(
    hooks: SkillHookCaller, ctx: RequestContext, inv: ToolInvocation, timeout: float
) -> ToolResult:
    """Run one tool call through ``before_toolcall`` / the tool / ``after_toolcall``
    (or the handoff hooks). Failures become error results the model sees; only a
    ``RequestError`` (a deliberate stop) propagates."""
    tool = inv.tool
    if tool is None:
        # The name is the model's: never a label.
        child(TOOL_CALLS, ctx.agent.name, "-", "unknown").inc()
        return ToolResult(
            content=f"Error: there is no tool named {inv.name!r} available to you.",
            is_error=True,
        )
    handoff = tool.is_handoff
    started = time.perf_counter()
    result = await (hooks.before_handoff(ctx, inv) if handoff else hooks.before_toolcall(ctx, inv))
    if result is None:
        try:
            kwargs = tool.parse_arguments(inv.arguments)
        except ValueError as exc:  # the model can correct its arguments and retry
            result = ToolResult(content=f"Error: {exc}", is_error=True, plugin=tool.plugin)
        else:
            result = await _run(inv, ctx, kwargs, timeout)
    result = await (hooks.after_handoff(ctx, inv, result) if handoff else hooks.after_toolcall(ctx, inv, result))
    duration = time.perf_counter() - started
    child(TOOL_CALLS, ctx.agent.name, tool.name, "error" if result.is_error else "ok").inc()
    child(TOOL_DURATION, ctx.agent.name, tool.name).observe(duration)
    ctx.usage.append(
        UsageRecord(
            kind="handoff" if handoff else "tool",
            name=inv.name,
            plugin=tool.plugin,
            ok=not result.is_error,
            error=result.content if result.is_error else None,
            duration_ms=duration * 1000,
        )
    )
    return result


async def run_tools(
    hooks: SkillHookCaller, ctx: RequestContext, calls: list[ToolInvocation], timeout: float
) -> list[ToolResult]:
    """Run the tool calls of one turn concurrently; results in call order."""
    if len(calls) == 1:
        return [await run_tool(hooks, ctx, calls[0], timeout)]
    outcomes = await asyncio.gather(
        *(run_tool(hooks, ctx, c, timeout) for c in calls), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return list(outcomes)  # type: ignore[arg-type]

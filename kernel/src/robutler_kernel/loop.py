"""The conversation loop of one request: LLM, tools, LLM again, up to ``max_tool_rounds``.

It runs inside a :class:`~robutler_kernel.turn.Turn`, which has already run
``on_connection`` and will run ``finalize_connection``; the loop owns what happens between:
the model check, ``on_message`` for the user's message, the system prompt, each LLM call
with its hooks, the agent's tools, and the client's tool calls handed back to the client.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robutler_specs import (
    BadRequest,
    Delta,
    FunctionCallDelta,
    Handoff,
    LLMCall,
    Message,
    RequestContext,
    RequestError,
    ToolCallDelta,
    ToolInvocation,
    ToolResult,
    UsageRecord,
)

from .assembly import StreamAssembler
from .llm import Answer
from .network import complete_remote, stream_remote
from .toolrunner import run_tools
from .toolturns import remember, splice

if TYPE_CHECKING:
    from .agent import Agent


@dataclass(slots=True)
class Outcome:
    """How a request ended: the final assistant message and its finish reason."""

    message: Message
    finish_reason: str


async def _incoming(agent: Agent, ctx: RequestContext) -> None:
    """``on_message`` for the user's message; a replacement takes its place."""
    user = ctx.user_message
    if user is None:
        return
    replaced = await agent.hooks.on_message(ctx, user)
    if replaced is not user:
        index = max(i for i, m in enumerate(ctx.messages) if m is user)
        ctx.messages[index] = replaced


NOT_RUN = "Not run: this turn handed the conversation to another agent."


def _name(target: Handoff, model: str | None) -> str:
    """Who answered when the target says nothing more: a local target's name; for a remote
    one the answer's ``model`` (a Robutler agent's name), else its URL."""
    return (model or target.agent) if target.remote else target.agent


def _failed(ctx: RequestContext, inv: ToolInvocation, target: Handoff, exc: RequestError, started: float) -> ToolResult:
    """A handoff that failed before the client saw any of it: metered, and a result the
    model reads."""
    ctx.usage.append(UsageRecord(
        kind="handoff", name=inv.name, plugin="handoffs", ok=False, error=exc.message,
        duration_ms=(time.perf_counter() - started) * 1000,
    ))
    return ToolResult(content=f"Error: the handoff to {target.agent} failed: {exc.message}", is_error=True, plugin="handoffs")


async def hand_off(
    agent: Agent, ctx: RequestContext, inv: ToolInvocation, *, stream: bool
) -> AsyncGenerator[Delta | Outcome | ToolResult, None]:
    """Hand the conversation to the agent behind ``inv`` (a ``transfer_to_<name>`` call).

    Yields the target's deltas (stream mode), then its answer as this request's
    :class:`Outcome`; or, when the handoff fails before anything reached the client (the
    target is unknown, refuses the caller, a loop...), a :class:`ToolResult` saying why.
    ``before_handoff`` sees (and may edit) ``inv.messages``, the conversation the target
    gets, or replace the handoff; ``after_handoff`` sees the target's answer.
    """
    target = agent.handoffs[inv.name]
    hooks = agent.hooks
    started = time.perf_counter()
    inv.messages = list(ctx.messages)
    try:
        replaced = await hooks.before_handoff(ctx, inv)
    except RequestError as exc:  # refused (a policy): the model reads why, like any failure
        yield _failed(ctx, inv, target, exc, started)
        return
    if replaced is not None:
        if stream:
            yield Delta(content=replaced.content)
        yield Outcome(Message(role="assistant", content=replaced.content), "stop")
        return
    kernel = agent.kernel
    assert kernel is not None, "handoffs run on a kernel"
    sent = False
    try:
        if stream:
            assembler = StreamAssembler()
            chunks = (
                stream_remote(agent, ctx, target, inv.messages)
                if target.remote
                else kernel.stream_agent(target.agent, inv.messages, parent=ctx)
            )
            answered: str | None = None
            async with aclosing(chunks) as parts:
                async for chunk in parts:
                    if isinstance(chunk.agent, str):
                        answered = chunk.agent
                    assembler.add(chunk)
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta.content or delta.tool_calls:
                            sent = True
                            yield Delta(content=delta.content, tool_calls=delta.tool_calls)
            result = assembler.result()
            message, finish = result.message, result.finish_reason
            ctx.answered_by = answered or _name(target, assembler.model)
        else:
            completion = await (
                complete_remote(agent, ctx, target, inv.messages)
                if target.remote
                else kernel.complete_agent(target.agent, inv.messages, parent=ctx)
            )
            first = completion.choices[0]
            message, finish = first.message, first.finish_reason or "stop"
            ctx.answered_by = completion.agent if isinstance(completion.agent, str) else _name(target, completion.model)
    except RequestError as exc:
        if sent:
            raise
        yield _failed(ctx, inv, target, exc, started)
        return
    answer = ToolResult(content=message.text(), plugin="handoffs")
    rewritten = await hooks.after_handoff(ctx, inv, answer)
    if not stream and rewritten is not answer:
        message = Message(role="assistant", content=rewritten.content, tool_calls=message.tool_calls)
    ctx.usage.append(UsageRecord(
        kind="handoff", name=inv.name, plugin="handoffs", duration_ms=(time.perf_counter() - started) * 1000,
    ))
    yield Outcome(message, finish)


async def converse(agent: Agent, ctx: RequestContext) -> AsyncGenerator[Delta | Outcome, None]:
    """Yields text deltas (stream mode only), then one :class:`Outcome`."""
    hooks = agent.hooks
    if ctx.requested_model:
        ctx.model = agent.model_for(ctx.requested_model)
    store = agent.kernel.state_store if agent.kernel is not None else None
    if store is not None:
        await splice(store, ctx.messages)  # the agent's part of earlier mixed turns
    await _incoming(agent, ctx)
    tools = agent.permitted_tools(ctx)
    definitions = agent.definitions(tools)
    client_names = {t.function.name for t in ctx.client_tools}
    clash = client_names & set(tools)
    if clash:
        raise BadRequest(
            f"tool name(s) {', '.join(sorted(clash))} sent in the request clash with the "
            f"agent's own tools; rename them",
            param="tools",
        )
    if ctx.client_tools:
        definitions = definitions + ctx.client_tools
    system = await agent.system_prompt(ctx)
    conversation = ([Message(role="system", content=system)] if system else []) + list(ctx.messages)
    outcome: Outcome | None = None
    round_ = 0
    while outcome is None:
        model, *fallbacks = agent.llm.models(ctx)
        call = LLMCall(
            model=model,
            fallbacks=fallbacks,
            messages=list(conversation),
            tools=list(definitions),  # hooks may edit it in place
            params=dict(ctx.params),
            stream=ctx.stream,
            round=round_,
        )
        await hooks.before_llm_call(ctx, call)
        if call.stream:
            answer: Answer | None = None
            async with aclosing(agent.llm.stream(ctx, call)) as deltas:
                async for item in deltas:
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        yield item
            assert answer is not None
            call, result = answer.call, answer.result
        else:
            call, result = await agent.llm.complete(ctx, call)
        await hooks.after_llm_call(ctx, call, result)
        message = result.message
        if not message.tool_calls:
            outcome = Outcome(message, result.finish_reason)
            break
        client_calls = [c for c in message.tool_calls if c.function.name in client_names]
        internal = [
            ToolInvocation(
                id=c.id, name=c.function.name, arguments=c.function.arguments,
                tool=tools.get(c.function.name), round=round_,
            )
            for c in message.tool_calls
            if c.function.name not in client_names
        ]
        if internal and round_ >= agent.spec.max_tool_rounds:
            note = (
                f"[stopped: the model asked for more tool calls after {round_} tool "
                f"round(s); the agent allows max_tool_rounds={agent.spec.max_tool_rounds}]"
            )
            if call.stream:
                yield Delta(content=note)
            outcome = Outcome(Message(role="assistant", content=note), "length")
            break
        conversation.append(message)
        transfer = next((inv for inv in internal if inv.name in agent.handoffs), None)
        if transfer is not None:
            handed: Outcome | ToolResult | None = None
            async for step in hand_off(agent, ctx, transfer, stream=call.stream):
                if isinstance(step, Delta):
                    yield step
                else:
                    handed = step
            if isinstance(handed, Outcome):
                outcome = handed
                break
            # The handoff failed before the client saw any of it: the model reads why.
            assert handed is not None
            conversation.extend(
                Message(role="tool", tool_call_id=inv.id, content=handed.content if inv is transfer else NOT_RUN)
                for inv in internal
            )
            internal = []
        server_results: list[Message] = []
        if internal:
            results = await run_tools(hooks, ctx, internal, agent.spec.tool_timeout)
            server_results = [
                Message(role="tool", tool_call_id=inv.id, content=res.content)
                for inv, res in zip(internal, results, strict=True)
            ]
            conversation.extend(server_results)
            handoff = next(
                (r for inv, r in zip(internal, results, strict=True) if inv.tool and inv.tool.is_handoff),
                None,
            )
            if handoff is not None:
                if call.stream:
                    yield Delta(content=handoff.content)
                outcome = Outcome(Message(role="assistant", content=handoff.content), "stop")
                break
        if client_calls:
            if server_results and store is not None:
                # A mixed turn: the follow-up gets the agent's part back (see toolturns).
                client_calls = await remember(store, message, client_calls, server_results)
            if call.stream:
                yield Delta(
                    tool_calls=[
                        ToolCallDelta(
                            index=i, id=c.id, type="function",
                            function=FunctionCallDelta(name=c.function.name, arguments=c.function.arguments),
                        )
                        for i, c in enumerate(client_calls)
                    ]
                )
            outcome = Outcome(
                Message(role="assistant", content=message.content, tool_calls=client_calls),
                "tool_calls",
            )
            break
        round_ += 1
    final = await hooks.on_message(ctx, outcome.message)
    if not ctx.stream:  # a streamed message is already sent; hooks can only observe it
        outcome.message = final
    yield outcome


__all__ = ["Outcome", "converse"]

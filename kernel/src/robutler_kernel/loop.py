"""The conversation loop of one request: LLM, tools, LLM again, up to ``max_tool_rounds``.

It runs inside a :class:`~robutler_kernel.turn.Turn`, which has already run
``on_connection`` and will run ``finalize_connection``; the loop owns what happens between:
the model check, ``on_message`` for the user's message, the system prompt, each LLM call
with its hooks, the agent's tools, and the client's tool calls handed back to the client.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robutler_specs import (
    BadRequest,
    Delta,
    FunctionCallDelta,
    LLMCall,
    Message,
    RequestContext,
    ToolCallDelta,
    ToolInvocation,
)

from .llm import Answer
from .toolrunner import run_tools

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


async def converse(agent: Agent, ctx: RequestContext) -> AsyncGenerator[Delta | Outcome, None]:
    """Yields text deltas (stream mode only), then one :class:`Outcome`."""
    hooks = agent.hooks
    if ctx.requested_model:
        ctx.model = agent.model_for(ctx.requested_model)
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
        if internal:
            results = await run_tools(hooks, ctx, internal, agent.spec.tool_timeout)
            conversation.extend(
                Message(role="tool", tool_call_id=inv.id, content=res.content)
                for inv, res in zip(internal, results, strict=True)
            )
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

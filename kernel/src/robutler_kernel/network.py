"""Agents reaching agents: running an agent for another request, and handoffs.

A handoff and a call from one agent to another are ways into an agent like any other: the
target runs a whole :class:`~.turn.Turn` of its own (its skills, its hooks, its scopes),
as a request of the same caller:

* the caller's headers and identity go with it, ``X-Authorized-Amount`` capped by what
  remains of the caller's budget (``ctx.budget``, set by a pricing skill), so a chain never
  spends more than the first caller authorized;
* the chain of agents grows (``ctx.chain``, ``X-Robutler-Chain`` across kernels): the
  target's turn refuses a loop (an agent already in the chain) and a chain longer than its
  ``max_handoff_depth``;
* what the target used comes back into the caller's usage, once: its LLM calls (tokens,
  never priced again here) and one ``kind="agent"`` record with what it cost. A local
  target charged the same payer (``paid``); a remote one charged this agent's credentials,
  so the caller's pricing skill passes the cost on.

A door that acts for an agent without a conversation of its own (a plugin route such as
the MCP plugin's ``/{agent}/mcp``) may run that same agent's conversation with
``complete_agent(name, messages, parent=ctx)``: that is the request continuing, not a hop, so
the chain does not grow (the agent is not a loop of itself); everything else is as above.

A remote target (a URL) is reached through the ``agent_complete`` / ``agent_stream`` hooks
of the caller's skills (the ``nli`` plugin implements them).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import msgspec

from robutler_specs import (
    AgentCall,
    AgentSpec,
    BadRequest,
    ChatCompletion,
    ChatCompletionChunk,
    Handoff,
    Message,
    NotFound,
    RequestContext,
    RequestError,
    ToolSpec,
    UsageRecord,
)

if TYPE_CHECKING:
    from .agent import Agent
    from .kernel import Kernel

CHAIN_HEADER = "x-robutler-chain"
AMOUNT_HEADER = "x-authorized-amount"
#: Request parameters that belong to the caller's own tools, not passed to a target.
_CALLER_ONLY = ("tool_choice", "parallel_tool_calls")


class _NoArguments(msgspec.Struct):
    """A handoff tool takes no arguments: the conversation goes with it."""


def _never(**_: Any) -> None:  # pragma: no cover - handoffs never run as plain tools
    raise RuntimeError("a handoff is run by the kernel, not called")


def handoff_tools(spec: AgentSpec, known: Mapping[str, AgentSpec]) -> dict[str, tuple[Handoff, ToolSpec]]:
    """The ``transfer_to_<name>`` tools of ``spec.handoffs``, by tool name."""
    tools: dict[str, tuple[Handoff, ToolSpec]] = {}
    for target in spec.handoff_targets:
        description = target.description
        if not description:
            local = known.get(target.agent)
            about = f": {local.description}" if local is not None and local.description else ""
            description = f"Hand the conversation over to agent {target.agent}{about}. It answers the user from here on."
        tool = ToolSpec(
            name=target.tool_name,
            description=description,
            parameters={"type": "object", "properties": {}},
            scope="all",
            fn=_never,
            context_param=None,
            args_type=_NoArguments,
            plugin="handoffs",
            is_handoff=True,
        )
        tools[tool.name] = (target, tool)
    return tools


def chain_of(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The agents a request passed through, from its ``X-Robutler-Chain`` header."""
    raw = headers.get(CHAIN_HEADER, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def check_chain(agent: AgentSpec, chain: tuple[str, ...]) -> None:
    """Refuse a request that would make a loop, or a chain longer than the agent allows."""
    if not chain:
        return
    if agent.name in chain:
        path = " -> ".join((*chain, agent.name))
        raise BadRequest(
            f"agent {agent.name!r} is already handling this request ({path}); the handoff loop was stopped",
            code="handoff_loop",
        )
    if len(chain) > agent.max_handoff_depth:
        raise BadRequest(
            f"this request already passed through {len(chain)} agents ({' -> '.join(chain)}); agent "
            f"{agent.name!r} allows at most {agent.max_handoff_depth} (max_handoff_depth)",
            code="handoff_too_deep",
        )


def child_context(agent: Agent, messages: list[Message], parent: RequestContext | None, *, stream: bool) -> RequestContext:
    """A request to ``agent`` made for ``parent``: its caller, budget and chain go along."""
    if parent is None:
        return RequestContext(agent.spec, list(messages), stream=stream)
    if parent.agent.name == agent.name and not parent.messages:
        chain = parent.chain  # a door of this agent running its conversation: no hop
    else:
        chain = (*parent.chain, parent.agent.name)
    headers = dict(parent.headers)
    headers.update(parent.forward_headers)
    headers[CHAIN_HEADER] = ",".join(chain)
    budget = parent.remaining_budget()
    if budget is not None:
        headers[AMOUNT_HEADER] = f"{budget:.6f}".rstrip("0").rstrip(".") or "0"
    params = {k: v for k, v in parent.params.items() if k not in _CALLER_ONLY}
    ctx = RequestContext(
        agent.spec, list(messages), params=params, client_tools=list(parent.client_tools), stream=stream,
        headers=headers, identity=parent.identity, chain=chain,
    )
    return ctx


def merge_usage(parent: RequestContext, child: RequestContext) -> None:
    """Add what ``child`` (a local agent's request for ``parent``) used to ``parent``'s
    usage, whether it succeeded or not: its calls, tagged with its agent, and one record of
    what it cost (already charged to the same payer)."""
    name = child.agent.name
    remote_prompt = remote_completion = 0
    for record in child.usage:
        if record.kind == "agent":
            # Its own callees are summed into its record below (their cost is in its total).
            remote_prompt += record.prompt_tokens
            remote_completion += record.completion_tokens
            continue
        if record.agent is None:
            record = msgspec.structs.replace(record, agent=name)
        parent.usage.append(record)
    cost = child.total_usage().cost
    parent.usage.append(
        UsageRecord(
            kind="agent", name=name, agent=name, prompt_tokens=remote_prompt, completion_tokens=remote_completion,
            credits=None if isinstance(cost, msgspec.UnsetType) else cost, paid=True,
        )
    )


def merge_remote(parent: RequestContext, url: str, usage: Any) -> None:
    """Add what a remote agent reported (``usage``: its tokens and ``cost``) to ``parent``:
    its cost was charged to this agent's credentials, so it is not ``paid``."""
    cost = getattr(usage, "cost", None)
    parent.usage.append(
        UsageRecord(
            kind="agent", name=url, agent=url,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            credits=cost if isinstance(cost, (int, float)) else None, paid=False,
        )
    )


async def _target(kernel: Kernel, name: str) -> Agent:
    agent = await kernel.get_agent(name)
    if agent is None:
        raise NotFound(f"no agent named {name!r} on this server", code="agent_not_found")
    return agent


async def complete_agent(
    kernel: Kernel, name: str, messages: list[Message], parent: RequestContext | None = None
) -> ChatCompletion:
    """Run local agent ``name`` on ``messages`` for ``parent`` (see the module)."""
    from .turn import Turn  # here: the turn's loop imports this module

    agent = await _target(kernel, name)
    ctx = child_context(agent, messages, parent, stream=False)
    try:
        return await Turn(agent, ctx).complete()
    finally:
        if parent is not None:
            merge_usage(parent, ctx)


async def stream_agent(
    kernel: Kernel, name: str, messages: list[Message], parent: RequestContext | None = None
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """As :func:`complete_agent`, streamed."""
    from .turn import Turn

    agent = await _target(kernel, name)
    ctx = child_context(agent, messages, parent, stream=True)
    try:
        async with aclosing(Turn(agent, ctx).stream()) as chunks:
            async for chunk in chunks:
                yield chunk
    finally:
        if parent is not None:
            merge_usage(parent, ctx)


def remote_call(parent: RequestContext, target: Handoff, messages: list[Message], *, stream: bool) -> AgentCall:
    """The call to a remote handoff target."""
    return AgentCall(
        url=target.agent, messages=messages, stream=stream, budget=parent.remaining_budget(),
        chain=[*parent.chain, parent.agent.name],
    )


async def complete_remote(agent: Agent, parent: RequestContext, target: Handoff, messages: list[Message]) -> ChatCompletion:
    """A remote handoff target's completion, through the caller's ``agent_complete`` hook."""
    completion = await agent.hooks.agent_complete(parent, remote_call(parent, target, messages, stream=False))
    if completion is None:
        raise _no_caller(agent, target)
    merge_remote(parent, target.agent, completion.usage)
    return completion


async def stream_remote(
    agent: Agent, parent: RequestContext, target: Handoff, messages: list[Message]
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """A remote handoff target's chunks, through the caller's ``agent_stream`` hook."""
    chunks = await agent.hooks.agent_stream(parent, remote_call(parent, target, messages, stream=True))
    if chunks is None:
        raise _no_caller(agent, target)
    usage: Any = None
    try:
        async for chunk in chunks:
            if chunk.usage:
                usage = chunk.usage
            yield chunk
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        merge_remote(parent, target.agent, usage)


def _no_caller(agent: Agent, target: Handoff) -> RequestError:
    return BadRequest(
        f"agent {agent.name!r} hands off to {target.agent}, but none of its skills calls remote agents; "
        "install robutler-plugin-nli (its skill is added to agents with remote handoffs)",
        code="no_agent_caller",
    )


__all__ = [
    "AMOUNT_HEADER",
    "CHAIN_HEADER",
    "chain_of",
    "check_chain",
    "child_context",
    "complete_agent",
    "complete_remote",
    "handoff_tools",
    "merge_remote",
    "merge_usage",
    "stream_agent",
    "stream_remote",
]

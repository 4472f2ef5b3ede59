"""Calling another agent for a request: where a name leads, what it may spend, and what it
cost.

A :class:`Caller` holds one configuration (the ``nli`` skill's, or any a skill builds) and
the kernel. :meth:`Caller.ask` / :meth:`Caller.ask_stream` serve ``ask_agent`` and skills:
a local agent runs in-process through the kernel (which passes on identity, budget and
chain, and records its usage); a remote one is called over HTTP and its cost is recorded
here, once, as a ``kind="agent"`` record that is not ``paid`` (the callee charged this
agent's credentials; the payments skill passes it on to the payer).
:meth:`Caller.complete` / :meth:`Caller.stream` serve the kernel's remote handoffs, whose
usage the kernel records itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import msgspec

from robutler_specs import (
    AgentCall,
    ChatCompletion,
    ChatCompletionChunk,
    KernelAPI,
    Message,
    RequestContext,
    Usage,
    UsageRecord,
)

from . import a2a, client
from .config import NLIConfig, PeerConfig
from .errors import PLUGIN, over_budget, unknown
from .guard import HostPolicy, safe_url

CHAIN_HEADER = "X-Robutler-Chain"
AMOUNT_HEADER = "X-Authorized-Amount"
COST_HEADER = "x-robutler-cost"
TOKEN_HEADER = "X-Payment-Token"
ENDPOINT = "/chat/completions"
_MICRO = Decimal("0.000001")


def base_url(url: str) -> str:
    """An agent's base URL: without a trailing ``/`` or ``/chat/completions``."""
    url = url.rstrip("/")
    return url[: -len(ENDPOINT)] if url.endswith(ENDPOINT) else url


def credits_text(amount: float) -> str:
    """Credits as ``X-Authorized-Amount`` sends them: at most 6 decimals, rounded down
    (never authorizing more than is left)."""
    text = format(Decimal(repr(amount)).quantize(_MICRO, rounding=ROUND_DOWN), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Destination:
    """Where a name leads: a local agent (``local``) or a URL, with the peer it belongs to."""

    asked: str
    local: str | None = None
    url: str | None = None
    peer_name: str | None = None
    peer: PeerConfig | None = None
    #: ``openai`` (chat completions) or ``a2a`` (the A2A protocol, :mod:`.a2a`).
    protocol: str = "openai"

    @property
    def where(self) -> str:
        """The callee as messages name it."""
        if self.local is not None:
            return f"agent {self.local!r}"
        assert self.url is not None
        named = f"agent {self.peer_name!r} " if self.peer_name else "the agent "
        return f"{named}at {safe_url(self.url)}"


@dataclass
class AgentReply:
    """What another agent answered (:meth:`Caller.ask`).

    :ivar text: the answer's text.
    :ivar agent: who answered: the local agent's name, or the callee's ``agent`` field
        (an agent it handed off to), or the URL.
    :ivar usage: the callee's usage; ``usage.cost`` is what it charged, if it says.
    :ivar cost: the credits it charged (``None``: it did not say).
    :ivar completion: the whole completion.
    """

    text: str
    agent: str
    usage: Usage
    cost: float | None
    completion: ChatCompletion


def _cost(usage: Any, headers: dict[str, str] | None = None) -> float | None:
    cost = getattr(usage, "cost", None)
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return float(cost)
    raw = next((v for k, v in (headers or {}).items() if k.lower() == COST_HEADER), None)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class Caller:
    """Calls other agents under one configuration.

    :param kernel: the kernel (local agents, the shared HTTP session).
    :param config: the settings (``peers``, ``allow_hosts``, limits).
    """

    def __init__(self, kernel: KernelAPI, config: NLIConfig) -> None:
        self.kernel = kernel
        self.config = config
        self.policy = HostPolicy.parse(config.allow_hosts, config.allow_private)
        self._by_url: dict[str, tuple[str, PeerConfig]] = {}
        for name, peer in config.peers.items():  # a URL two peers share: the first one's
            self._by_url.setdefault(base_url(peer.url), (name, peer))

    # -- where, and how much -------------------------------------------------------------

    def remote(self, url: str) -> Destination:
        """A URL as a destination; a peer's URL carries that peer's credentials (and its
        protocol); ``a2a+https://...`` is an A2A agent."""
        explicit = a2a.is_a2a(url)
        url = base_url(a2a.strip(url))
        name, peer = self._by_url.get(url, (None, None))
        protocol = "a2a" if explicit or (peer is not None and peer.protocol == "a2a") else "openai"
        return Destination(asked=url, url=url, peer_name=name, peer=peer, protocol=protocol)

    async def destination(self, agent: str) -> Destination:
        """Where ``agent`` leads: a URL, else a peer's name, else a local agent's name.

        :raises NotFound: none of these.
        """
        agent = agent.strip()
        if agent.startswith(("http://", "https://")) or a2a.is_a2a(agent):
            return self.remote(agent)
        peer = self.config.peers.get(agent)
        if peer is not None:
            return Destination(asked=agent, url=base_url(peer.url), peer_name=agent, peer=peer,
                               protocol=peer.protocol)
        if agent and "/" not in agent and await self.kernel.find_agent(agent) is not None:
            return Destination(asked=agent, local=agent)
        raise unknown(agent)

    def authorize(self, budget: float | None, dest: Destination) -> float | None:
        """What the call may spend (``X-Authorized-Amount``): what is left of ``budget``,
        capped by ``max_credits`` (the skill's and the peer's); ``None`` to send none.

        :raises PaymentRequired: nothing is left, or less than ``min_credits``.
        """
        peer = dest.peer
        caps = [c for c in (self.config.max_credits, peer.max_credits if peer else None) if c is not None]
        minimum = max(self.config.min_credits, peer.min_credits if peer else 0.0)
        if budget is None:
            return min(caps) if caps else None
        if budget <= 0:
            raise over_budget(
                f"nothing is left of this request's budget to pay {dest.where}; the call was not made "
                "(send a larger X-Authorized-Amount, or answer without it)"
            )
        if budget < minimum:
            raise over_budget(
                f"{credits_text(budget)} credits are left of this request's budget, but calling {dest.where} "
                f"needs at least {credits_text(minimum)} (min_credits); the call was not made"
            )
        return min([budget, *caps])

    def outbound(self, dest: Destination, messages: list[Message], chain: list[str], *, stream: bool,
                 budget: float | None, timeout: float | None = None,
                 forward: Mapping[str, str] | None = None) -> client.Outbound:
        """The HTTP call to ``dest``: the callee's credentials (never the caller's), the
        chain, the authorized amount, and the request's ``forward_headers`` (trace
        context; ours win)."""
        assert dest.url is not None
        amount = self.authorize(budget, dest)
        headers = {
            **(forward or {}),
            CHAIN_HEADER: ",".join(chain),
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if amount is not None:
            headers[AMOUNT_HEADER] = credits_text(amount)
        peer = dest.peer
        if peer is not None and peer.api_key:
            headers["Authorization"] = f"Bearer {peer.api_key}"
        if peer is not None and peer.payment_token:
            headers[TOKEN_HEADER] = peer.payment_token
        payload: dict[str, Any] = {"messages": msgspec.to_builtins(messages), "stream": stream}
        if stream:
            payload["stream_options"] = {"include_usage": True}
        if peer is not None and peer.model:
            payload["model"] = peer.model
        return client.Outbound(
            url=dest.url + ENDPOINT, payload=payload, headers=headers, policy=self.policy,
            timeout=timeout or self.config.timeout, connect_timeout=self.config.connect_timeout,
            max_bytes=self.config.max_response_bytes, where=dest.where,
        )

    # -- handoffs (the kernel records usage) -----------------------------------------------

    async def _complete(self, dest: Destination, out: client.Outbound,
                        messages: list[Message]) -> tuple[ChatCompletion, dict[str, str]]:
        """One call, in the destination's protocol."""
        if dest.protocol == "a2a":
            assert dest.url is not None
            return await a2a.complete(self.kernel.state, client.session(self.kernel), out, dest.url, messages)
        return await client.complete(client.session(self.kernel), out)

    async def complete(self, call: AgentCall, forward: Mapping[str, str] | None = None) -> ChatCompletion:
        """A remote handoff's completion (``agent_complete``)."""
        dest = self.remote(call.url)
        out = self.outbound(dest, call.messages, call.chain, stream=False, budget=call.budget, timeout=call.timeout,
                            forward=forward)
        completion, headers = await self._complete(dest, out, call.messages)
        if isinstance(completion.usage.cost, msgspec.UnsetType):
            cost = _cost(None, headers)
            if cost is not None:
                completion.usage.cost = cost
        return completion

    async def stream(self, call: AgentCall, forward: Mapping[str, str] | None = None) -> AsyncIterator[ChatCompletionChunk]:
        """A remote handoff's chunks (``agent_stream``); errors before the first chunk are
        raised here."""
        dest = self.remote(call.url)
        if dest.protocol == "a2a":  # an A2A answer arrives whole: one chunk
            return a2a.as_chunks(await self.complete(call, forward))
        out = self.outbound(dest, call.messages, call.chain, stream=True, budget=call.budget, timeout=call.timeout,
                            forward=forward)
        return await client.stream(client.session(self.kernel), out)

    # -- ask_agent and skills (remote usage recorded here) ---------------------------------

    @staticmethod
    def _chain(ctx: RequestContext) -> list[str]:
        return [*ctx.chain, ctx.agent.name]

    @staticmethod
    def _record(ctx: RequestContext, dest: Destination, usage: Usage | None, cost: float | None,
                started: float) -> None:
        assert dest.url is not None
        ctx.usage.append(UsageRecord(
            kind="agent", name=dest.url, agent=dest.url, plugin=PLUGIN,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            credits=cost, paid=False, duration_ms=(time.perf_counter() - started) * 1000,
        ))

    async def ask(self, ctx: RequestContext, agent: str, message: str) -> AgentReply:
        """Ask ``agent`` (a local name, a peer, a URL) one question for ``ctx``'s request.

        :raises RequestError: the agent is unknown, refused, over budget, or failed.
        """
        dest = await self.destination(agent)
        messages = [Message(role="user", content=message)]
        if dest.local is not None:
            # The kernel notes the agent asked as the one who answered (right for a
            # handoff); here this agent answers, with what it was told.
            answered_by = ctx.answered_by
            try:
                completion = await self.kernel.complete_agent(dest.local, messages, parent=ctx)
            finally:
                ctx.answered_by = answered_by
            return _reply(completion, dest.local, _cost(completion.usage))
        started = time.perf_counter()
        out = self.outbound(dest, messages, self._chain(ctx), stream=False, budget=ctx.remaining_budget(),
                            forward=ctx.forward_headers)
        completion, headers = await self._complete(dest, out, messages)
        cost = _cost(completion.usage, headers)
        self._record(ctx, dest, completion.usage, cost, started)
        assert dest.url is not None
        return _reply(completion, dest.url, cost)

    async def ask_stream(self, ctx: RequestContext, agent: str, message: str) -> AsyncIterator[ChatCompletionChunk]:
        """As :meth:`ask`, the answer's chunks as they come. The call is made (and refused,
        or failed before any chunk) before this returns; its usage is recorded when the
        iterator ends or is closed."""
        dest = await self.destination(agent)
        messages = [Message(role="user", content=message)]
        if dest.local is not None:
            return _answering(ctx, self.kernel.stream_agent(dest.local, messages, parent=ctx))
        if dest.protocol == "a2a":  # an A2A answer arrives whole: one chunk
            return a2a.as_chunks((await self.ask(ctx, agent, message)).completion)
        started = time.perf_counter()
        out = self.outbound(dest, messages, self._chain(ctx), stream=True, budget=ctx.remaining_budget(),
                            forward=ctx.forward_headers)
        chunks = await client.stream(client.session(self.kernel), out)
        return self._metered(ctx, dest, chunks, started)

    async def _metered(self, ctx: RequestContext, dest: Destination, chunks: AsyncIterator[ChatCompletionChunk],
                       started: float) -> AsyncGenerator[ChatCompletionChunk, None]:
        usage: Usage | None = None
        try:
            async for chunk in chunks:
                if isinstance(chunk.usage, Usage):
                    usage = chunk.usage
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            self._record(ctx, dest, usage, _cost(usage), started)


async def _answering(ctx: RequestContext, chunks: AsyncIterator[ChatCompletionChunk]
                     ) -> AsyncGenerator[ChatCompletionChunk, None]:
    """A local agent's chunks, leaving who answers ``ctx`` as it was (see :meth:`Caller.ask`)."""
    answered_by = ctx.answered_by
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        ctx.answered_by = answered_by


def _reply(completion: ChatCompletion, default: str, cost: float | None) -> AgentReply:
    choice = completion.choices[0] if completion.choices else None
    text = choice.message.text() if choice is not None else ""
    agent = completion.agent if isinstance(completion.agent, str) else default
    return AgentReply(text=text, agent=agent, usage=completion.usage, cost=cost, completion=completion)


__all__ = ["AgentReply", "Caller", "Destination", "base_url", "credits_text"]

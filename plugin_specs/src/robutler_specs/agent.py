"""The description of an agent, as configured (YAML) or resolved dynamically."""

from __future__ import annotations

import re
from typing import Any

import msgspec


class RetryPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the kernel retries a failed LLM call, then falls through the model list.

    A call is tried again after a connection error, a timeout, a 429 or a 5xx (errors a
    provider marks ``retryable``), and only while no token of it has reached the client.
    Retry ``n`` (1, 2, ...) waits ``min(max_delay, initial_delay * multiplier**(n-1))``,
    less a random part of up to ``jitter`` of it, and never less than the provider's
    ``Retry-After``. After ``attempts`` tries of one model (or at once, when ``Retry-After``
    asks for more than ``max_retry_after`` seconds) the next model of the agent's list is
    tried; when none is left the last error is the answer.

    :ivar attempts: tries of each model, the first included (1 = no retries).
    :ivar initial_delay: seconds before the first retry.
    :ivar max_delay: the longest wait between two tries, in seconds.
    :ivar multiplier: how the wait grows from one retry to the next.
    :ivar jitter: the random share of each wait, 0 (none) to 1 (anywhere in 0..wait).
    :ivar max_retry_after: the longest ``Retry-After`` worth waiting for, in seconds.
    :ivar breaker_failures: failed tries in a row after which a model of a fallback list is
        tried last (its circuit is open) for ``breaker_cooldown`` seconds; 0 turns it off.
    :ivar breaker_cooldown: seconds an open model is tried after the others.
    """

    attempts: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_retry_after: float = 20.0
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry.attempts must be 1 or more (1 means no retries)")
        if min(self.initial_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("retry delays must be 0 or more seconds")
        if self.multiplier < 1:
            raise ValueError("retry.multiplier must be 1 or more")
        if not 0 <= self.jitter <= 1:
            raise ValueError("retry.jitter must be between 0 and 1")
        if self.breaker_failures < 0 or self.breaker_cooldown < 0:
            raise ValueError("retry.breaker_failures and retry.breaker_cooldown must be 0 or more")


class Handoff(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An agent this agent may hand a conversation to (``handoffs:``).

    :ivar agent: a local agent's name, or the URL of a remote OpenAI-compatible agent
        (``https://host/agent-name``; remote handoffs need a skill implementing
        ``agent_complete`` / ``agent_stream``, such as the ``nli`` plugin's).
    :ivar name: the tool's suffix (``transfer_to_<name>``); default: the agent's name (or
        the URL's last path segment), non-identifier characters as ``_``.
    :ivar description: what the target does, for the model (default: the local agent's
        description).
    """

    agent: str
    name: str | None = None
    description: str = ""

    @property
    def remote(self) -> bool:
        """Whether the target is a URL."""
        return self.agent.startswith(("http://", "https://"))

    @property
    def tool_name(self) -> str:
        """``transfer_to_<name>``."""
        base = self.name or self.agent.rstrip("/").rsplit("/", 1)[-1]
        return "transfer_to_" + re.sub(r"[^A-Za-z0-9_]", "_", base)


class AgentSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One agent: instructions, a model and skills.

    :ivar name: the agent's name; its URL path (``/{name}/chat/completions``).
    :ivar description: one line shown in listings and to other agents.
    :ivar instructions: the system prompt.
    :ivar model: ``"<provider>/<model>"``, or a list tried in order (fallback).
    :ivar skills: skill name to that skill's config (``None`` means defaults).
    :ivar tools: ``"module:function"`` references to plain-Python tools.
    :ivar max_tool_rounds: how many rounds of internal tool calls one request may run.
    :ivar tool_timeout: seconds one tool call may take before it fails.
    :ivar allowed_models: models a request's ``model`` field may switch to.
    :ivar retry: how failed LLM calls are retried before the next model is tried.
    :ivar intents: what the agent can do, for discovery.
    :ivar owner: the user id of the agent's owner (``owner`` scope).
    :ivar metadata: free-form data shown in agent info.
    :ivar handoffs: agents this one may hand the conversation to: each a name or URL, or
        a :class:`Handoff` (each becomes a ``transfer_to_<name>`` tool).
    :ivar max_handoff_depth: how many agents one request may pass through after this one
        (a handoff from a handoff counts twice); further handoffs are refused.
    """

    name: str = ""
    description: str = ""
    instructions: str = ""
    model: str | list[str] = "scripted/echo"
    skills: dict[str, dict[str, Any] | None] = {}
    tools: list[str] = []
    max_tool_rounds: int = 10
    tool_timeout: float = 30.0
    allowed_models: list[str] = []
    retry: RetryPolicy = msgspec.field(default_factory=RetryPolicy)
    intents: list[str] = []
    owner: str | None = None
    metadata: dict[str, Any] = {}
    handoffs: list[str | Handoff] = []
    max_handoff_depth: int = 3

    def __post_init__(self) -> None:
        if self.max_handoff_depth < 0:
            raise ValueError("max_handoff_depth must be 0 or more")

    @property
    def handoff_targets(self) -> list[Handoff]:
        """``handoffs`` with names given as :class:`Handoff`."""
        return [h if isinstance(h, Handoff) else Handoff(agent=h) for h in self.handoffs]

    @property
    def models(self) -> list[str]:
        """``model`` as a list (the first is the primary)."""
        return [self.model] if isinstance(self.model, str) else list(self.model)


__all__ = ["AgentSpec", "Handoff", "RetryPolicy"]

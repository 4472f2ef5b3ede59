"""Settings: per agent (``skills: {a2a: {...}}``) and for the plugin (``plugins: {a2a: {...}}``)."""

from __future__ import annotations

import msgspec


class CardSkill(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One skill of the agent card (``AgentSkill``): what the agent can be asked to do.

    :ivar id: a unique id.
    :ivar name: a name for people.
    :ivar description: what it does.
    :ivar tags: keywords.
    :ivar examples: example requests.
    """

    id: str
    name: str = ""
    description: str = ""
    tags: list[str] = []
    examples: list[str] = []


class A2AConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings under ``skills: {a2a: {...}}``; listing the skill serves the agent over A2A.

    :ivar skills: the card's skills; by default one skill made of the agent's name,
        description and intents.
    :ivar examples: example requests for the default skill.
    :ivar version: the agent's version on its card.
    :ivar organization: the provider's organization on the card (with ``provider_url``).
    :ivar provider_url: the provider's URL on the card.
    :ivar documentation_url: a link to the agent's documentation on the card.
    :ivar streaming: offer ``message/stream`` (the card's ``capabilities.streaming``).
    :ivar history: keep a context's earlier messages (``contextId``) and send them to the
        agent with the next message of that context, so a conversation goes on.
    """

    skills: list[CardSkill] = []
    examples: list[str] = []
    version: str = "1.0.0"
    organization: str | None = None
    provider_url: str | None = None
    documentation_url: str | None = None
    streaming: bool = True
    history: bool = True


class A2ASettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings under ``plugins: {a2a: {...}}``.

    :ivar public_url: the server's URL as clients reach it (``https://agents.example.com``),
        for the card's endpoint; by default taken from the request's ``Host`` (and
        ``X-Forwarded-Proto``).
    :ivar task_ttl: seconds a task (``tasks/get``) and a context's history are kept in the
        kernel's state store (shared by replicas when one is configured).
    :ivar max_history: the most messages of a context kept and sent to the agent.
    """

    public_url: str | None = None
    task_ttl: float = 86400.0
    max_history: int = 40

    def __post_init__(self) -> None:
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        if self.task_ttl <= 0:
            raise ValueError("task_ttl must be a positive number of seconds")
        if self.max_history < 0:
            raise ValueError("max_history must be 0 or more")


__all__ = ["A2AConfig", "A2ASettings", "CardSkill"]

"""Settings of the ``nli`` skill (``skills: {nli: {...}}``) and of each peer."""

from __future__ import annotations

from typing import Literal

import msgspec

#: The largest answer read from another agent, by default (1 MiB; a stream's total too).
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024


class PeerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Another agent known by a name (``peers: {name: {...}}``).

    :ivar url: the agent's base URL (``https://host/agent``); its chat completions are at
        ``{url}/chat/completions``.
    :ivar api_key: sent as ``Authorization: Bearer <api_key>`` (the callee's auth knows
        this agent by it, and charges its account).
    :ivar payment_token: sent as ``X-Payment-Token`` (the callee charges the token).
    :ivar max_credits: the most one call may authorize (``X-Authorized-Amount``), below
        the skill's ``max_credits``.
    :ivar min_credits: calls are refused before they are made when less than this is left
        of the request's budget (the callee's minimum charge).
    :ivar model: a ``model`` to send (for plain OpenAI-compatible servers); Robutler agents
        need none.
    :ivar description: what the peer does, shown to the model in the tool's description.
    :ivar protocol: how to call it: ``openai`` (its ``/chat/completions``) or ``a2a`` (the
        A2A protocol: its agent card at ``{url}/.well-known/agent-card.json``, then
        JSON-RPC ``message/send``).
    """

    url: str
    api_key: str | None = None
    payment_token: str | None = None
    max_credits: float | None = None
    min_credits: float = 0.0
    model: str | None = None
    description: str = ""
    protocol: Literal["openai", "a2a"] = "openai"

    def __post_init__(self) -> None:
        if self.url.startswith(("a2a+http://", "a2a+https://")):
            self.url = self.url[len("a2a+"):]
            self.protocol = "a2a"
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"peer url {self.url!r} must start with http:// or https:// (or a2a+https://)")
        if self.max_credits is not None and self.max_credits < 0:
            raise ValueError("max_credits must be 0 or more")
        if self.min_credits < 0:
            raise ValueError("min_credits must be 0 or more")


class NLIConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings under ``skills: {nli: {...}}``.

    :ivar peers: other agents by name, with their URL and the credentials to use there.
    :ivar allow_hosts: the hosts outbound calls may go to: glob patterns of host names
        (``*.example.com``), IP addresses or networks (``10.0.0.0/8``); empty means any
        host with public addresses.
    :ivar allow_private: also allow loopback, link-local, private (RFC 1918, ULA), shared
        (100.64/10), unspecified and multicast addresses for any allowed host. Without it
        only an exact host name, an address or a network listed in ``allow_hosts`` may
        reach such addresses.
    :ivar timeout: seconds one call may take in all (connecting, the answer, every chunk of
        a stream); the agent's ``tool_timeout`` bounds ``ask_agent`` too.
    :ivar connect_timeout: seconds to open the connection.
    :ivar max_response_bytes: the largest answer read (a stream: all its events together);
        a longer one is an error.
    :ivar max_credits: the most one call may authorize (``X-Authorized-Amount``); ``None``:
        what is left of the request's budget.
    :ivar min_credits: refuse a call before making it when less than this is left of the
        request's budget.
    """

    peers: dict[str, PeerConfig] = {}
    allow_hosts: list[str] = []
    allow_private: bool = False
    timeout: float = 25.0
    connect_timeout: float = 5.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_credits: float | None = None
    min_credits: float = 0.0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive numbers of seconds")
        if self.max_response_bytes < 1:
            raise ValueError("max_response_bytes must be 1 or more")
        if self.max_credits is not None and self.max_credits < 0:
            raise ValueError("max_credits must be 0 or more")
        if self.min_credits < 0:
            raise ValueError("min_credits must be 0 or more")


__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "NLIConfig", "PeerConfig"]

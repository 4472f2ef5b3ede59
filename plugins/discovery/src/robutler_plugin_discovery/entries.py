"""What is listed about an agent, wherever it lives (this kernel, a peer, the registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robutler_specs import AgentSpec

#: Where an entry came from.
LOCAL = "local"
REGISTRY = "registry"


@dataclass(frozen=True, slots=True)
class AgentEntry:
    """One agent as search sees it.

    :ivar name: the agent's name.
    :ivar description: its one-line description.
    :ivar intents: what it can do.
    :ivar url: its base URL (``None`` for a local agent when ``public_url`` is unset).
    :ivar source: ``local``, ``registry`` or a peer's base URL.
    :ivar metadata: free-form data from the agent's config (local agents only).
    :ivar expires_in: seconds until a registration lapses (registry entries only).
    """

    name: str
    description: str = ""
    intents: tuple[str, ...] = ()
    url: str | None = None
    source: str = LOCAL
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_in: float | None = None

    @property
    def text(self) -> str:
        """What ranking reads: name, description and intents."""
        return " ".join([self.name, self.description, *self.intents])

    def as_dict(self, score: float | None = None) -> dict[str, Any]:
        """The entry as ``GET /agents`` lists it."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "intents": list(self.intents),
            "source": self.source,
        }
        if self.url is not None:
            out["url"] = self.url
        if self.metadata:
            out["metadata"] = self.metadata
        if self.expires_in is not None:
            out["expires_in"] = self.expires_in
        if score is not None:
            out["score"] = round(score, 6)
        return out


def local_entry(spec: AgentSpec, public_url: str | None) -> AgentEntry:
    """The entry of one of this kernel's agents."""
    return AgentEntry(
        name=spec.name,
        description=spec.description,
        intents=tuple(spec.intents),
        url=f"{public_url}/{spec.name}" if public_url else None,
        metadata=dict(spec.metadata),
    )


def entry_from_listing(item: Any, base_url: str, source: str) -> AgentEntry | None:
    """An entry of another kernel's ``GET /agents`` answer, or ``None`` when malformed.

    An item without ``url`` is an agent of that kernel: ``{base_url}/{name}``.
    """
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        return None
    description = item.get("description")
    intents = item.get("intents")
    url = item.get("url")
    return AgentEntry(
        name=item["name"],
        description=description if isinstance(description, str) else "",
        intents=tuple(i for i in intents if isinstance(i, str)) if isinstance(intents, list) else (),
        url=url if isinstance(url, str) and url else f"{base_url}/{item['name']}",
        source=source,
    )

"""What V1 names mean in V2: capabilities to skills (and the plugin that provides each),
V1 model names to ``<provider>/<model>``, ``access_level`` to scopes.

The capability names are those of the V2 design's migration tool (``memory``,
``long_term_memory``, ``vector_db``, ``guardrails``, ``google_search``, ``database``) and
of the skills its production agent lists (``litellm``, ``storage``, ``auth``, ``payments``,
``google``), plus the V2 skill names themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """Where a V1 capability goes.

    :ivar skill: the V2 skill, or ``None`` when no V2 plugin provides it (yet).
    :ivar distribution: the package that provides the skill.
    :ivar reason: why it cannot be migrated, and what to do instead (``skill`` is ``None``).
    :ivar renames: V1 setting names to the skill's own.
    """

    skill: str | None
    distribution: str | None = None
    reason: str = ""
    renames: dict[str, str] = field(default_factory=dict)


_MEMORY = Target("short_term_memory", "robutler-plugin-memory", renames={"ttl": "ttl_seconds", "max_history": "max_messages"})
_LONGTERM = Target(
    "long_term_memory", "robutler-plugin-longterm",
    renames={"connection_string": "dsn", "database_url": "dsn", "db_path": "path", "max_results": "recall_limit"},
)
_VECTOR = Target(
    "vector_memory", "robutler-plugin-vector",
    renames={"milvus_uri": "uri", "collection_name": "collection", "milvus_token": "token"},
)
_SEARCH = Target(
    None,
    reason="no V2 plugin searches the web yet; a plain-Python tool calling your search API replaces it "
    "(tools: [\"module:function\"], docs/configuration.md#tools-modulefunction)",
)
_PLANNED = "is planned in the V2 design but no plugin provides it yet"

CAPABILITIES: dict[str, Target] = {
    "memory": _MEMORY,
    "short_term_memory": _MEMORY,
    "long_term_memory": _LONGTERM,
    "vector_db": _VECTOR,
    "vector_memory": _VECTOR,
    "guardrails": Target("guardrails", "robutler-plugin-guardrails"),
    "auth": Target("auth", "robutler-plugin-auth"),
    "payments": Target("payments", "robutler-plugin-payments"),
    "nli": Target("nli", "robutler-plugin-nli"),
    "discovery": Target("discovery", "robutler-plugin-discovery"),
    "google_search": _SEARCH,
    "google": _SEARCH,
    "web_search": _SEARCH,
    "database": Target(
        None,
        reason="no V2 plugin gives the model a database; long_term_memory keeps facts per user, and a "
        "plain-Python tool (tools: [\"module:function\"]) can query your own database",
    ),
    "storage": Target(None, reason=f"the storage skill (JSON per user and agent) {_PLANNED}; long_term_memory keeps facts per user meanwhile"),
    "litellm": Target(
        None,
        reason="V2 has no litellm skill: the model's provider skill serves it (openai, anthropic; any "
        "OpenAI-compatible server through the openai skill's base_url)",
    ),
    "mcp": Target("mcp", "robutler-plugin-mcp"),
    "a2a": Target("a2a", "robutler-plugin-a2a"),
    "otel": Target(None, reason=f"the otel plugin {_PLANNED}"),
}

#: V1 ``access_level`` values and the V2 scope of each.
ACCESS_LEVELS: dict[str, str] = {
    "all": "all", "public": "all", "everyone": "all", "anyone": "all",
    "owner": "owner", "private": "owner",
    "admin": "admin", "administrator": "admin",
}

#: The provider of a V1 model name, by its form (first match wins).
MODEL_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(gpt-|chatgpt-|o\d)[\w.:-]*"), "openai"),
    (re.compile(r"claude-[\w.:@-]*"), "anthropic"),
)

#: Legacy completion-only models: a chat API cannot serve them.
LEGACY_MODELS = re.compile(r"(text-(davinci|curie|babbage|ada)-\d+|davinci|curie|babbage|ada|davinci-002|babbage-002|gpt-3\.5-turbo-instruct.*)")

#: The model V1 used when a config named none (the design's migration tool).
V1_DEFAULT_MODEL = "gpt-3.5-turbo"

#: V1 agent-level LLM parameters, sent with every call in V2 (the provider's ``default_params``).
LLM_PARAMS = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "stop", "seed")

#: V1 provider settings: V1 key -> (provider, the provider skill's key).
PROVIDER_SETTINGS: dict[str, tuple[str, str]] = {
    "openai_api_key": ("openai", "api_key"),
    "openai_base_url": ("openai", "base_url"),
    "openai_api_base": ("openai", "base_url"),
    "openai_organization": ("openai", "organization"),
    "anthropic_api_key": ("anthropic", "api_key"),
    "anthropic_base_url": ("anthropic", "base_url"),
}

#: V1 fields that describe the agent, kept under ``metadata``.
METADATA_FIELDS = ("version", "tags", "category", "author")


__all__ = [
    "ACCESS_LEVELS",
    "CAPABILITIES",
    "LEGACY_MODELS",
    "LLM_PARAMS",
    "METADATA_FIELDS",
    "MODEL_FAMILIES",
    "PROVIDER_SETTINGS",
    "V1_DEFAULT_MODEL",
    "Target",
]

"""The agent card: what an A2A client reads first (``/{agent}/.well-known/agent-card.json``).

Built from the agent's spec (name, description, intents), its ``a2a`` settings (skills,
provider, version) and the server's public URL. It lists two interfaces on the same
JSON-RPC endpoint: protocol 1.0 and 0.3, so clients of either version find one. An agent
with the ``auth`` skill declares HTTP bearer authentication.
"""

from __future__ import annotations

from typing import Any

import msgspec
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol

from robutler_specs import AgentSpec, HttpRequest

from .config import A2AConfig, A2ASettings

#: Where the JSON-RPC endpoint is, under the agent's base URL.
ENDPOINT = "/a2a"
BEARER = "bearer"


def agent_config(spec: AgentSpec) -> A2AConfig | None:
    """The agent's ``a2a`` settings, or ``None`` when it does not list the skill."""
    if "a2a" not in spec.skills:
        return None
    return msgspec.convert(spec.skills["a2a"] or {}, A2AConfig)


def base_url(request: HttpRequest, settings: A2ASettings, agent: str) -> str:
    """The agent's base URL as clients reach it."""
    if settings.public_url:
        return f"{settings.public_url.rstrip('/')}/{agent}"
    scheme = request.headers.get("x-forwarded-proto", "http").split(",")[0].strip() or "http"
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "localhost")
    return f"{scheme}://{host.split(',')[0].strip()}/{agent}"


def build_card(spec: AgentSpec, config: A2AConfig, url: str) -> AgentCard:
    """The card of ``spec`` served at ``url`` (the agent's base URL)."""
    skills = [
        AgentSkill(id=s.id, name=s.name or s.id, description=s.description or spec.description or s.id,
                   tags=s.tags, examples=s.examples)
        for s in config.skills
    ] or [
        AgentSkill(id=spec.name, name=spec.name, description=spec.description or f"Agent {spec.name}",
                   tags=list(spec.intents) or [spec.name], examples=config.examples)
    ]
    endpoint = url + ENDPOINT
    card = AgentCard(
        name=spec.name,
        description=spec.description or f"Agent {spec.name}",
        version=config.version,
        supported_interfaces=[
            AgentInterface(url=endpoint, protocol_binding=TransportProtocol.JSONRPC.value,
                           protocol_version=PROTOCOL_VERSION_1_0),
            AgentInterface(url=endpoint, protocol_binding=TransportProtocol.JSONRPC.value,
                           protocol_version=PROTOCOL_VERSION_0_3),
        ],
        capabilities=AgentCapabilities(streaming=config.streaming, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain"],
        skills=skills,
    )
    if config.organization:
        card.provider.CopyFrom(AgentProvider(organization=config.organization, url=config.provider_url or url))
    if config.documentation_url:
        card.documentation_url = config.documentation_url
    if "auth" in spec.skills:
        card.security_schemes[BEARER].CopyFrom(SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="Bearer", description="An API key or JWT of the agent's auth skill"),
        ))
        requirement = SecurityRequirement()
        requirement.schemes[BEARER].SetInParent()
        card.security_requirements.append(requirement)
    return card


def card_json(spec: AgentSpec, config: A2AConfig, url: str) -> dict[str, Any]:
    """The card as served (protocol 1.0 fields, and the 0.3 ones beside them)."""
    return agent_card_to_dict(build_card(spec, config, url))


__all__ = ["ENDPOINT", "agent_config", "base_url", "build_card", "card_json"]

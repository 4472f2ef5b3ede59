"""The HTTP routes: ``GET /agents`` (search) and the registry's register / deregister.

The registry's routes act for an agent (``/{agent}/agents/register``): they run that
agent's lifecycle, so its ``auth`` skill identifies the caller (``ctx.identity``) exactly
as for a chat. Only an agent that lists the ``discovery`` skill takes registrations.
"""

from __future__ import annotations

from typing import Any

from robutler_specs import BadRequest, HttpRequest, HttpRoute, KernelAPI, NotFound, RequestContext

from .registry import Registry
from .registry.service import parse_registration
from .runtime import Discovery, runtime_of

#: The skill an agent lists to take registrations (and to give its model ``discover_agents``).
SKILL = "discovery"


def top_k_of(request: HttpRequest, runtime: Discovery) -> int:
    """``top_k`` of the query (default ``default_top_k``, at most ``max_top_k``), or a 400."""
    raw = request.query.get("top_k")
    if raw is None or raw == "":
        return runtime.settings.default_top_k
    try:
        top_k = int(raw)
    except ValueError:
        raise BadRequest(f"top_k must be an integer, not {raw!r}", param="top_k") from None
    if top_k < 0:
        raise BadRequest("top_k must be 0 or more", param="top_k")
    return min(top_k, runtime.settings.max_top_k)


def registry_for(kernel: KernelAPI, ctx: RequestContext) -> Registry:
    """The registry, when this kernel is one and the agent takes registrations; else 404."""
    registry = runtime_of(kernel).registry
    if registry is None:
        raise NotFound("this server is not an agent registry (plugins.discovery.registry is not set)",
                       code="registry_not_enabled")
    if SKILL not in ctx.agent.skills:
        raise NotFound(f"agent {ctx.agent.name!r} takes no registrations: list the discovery skill "
                       "(and auth) on the agent registrations go through", code="registry_not_enabled")
    return registry


def make_routes(kernel: KernelAPI) -> list[HttpRoute]:
    """The plugin's routes, bound to ``kernel``."""

    async def list_agents(request: HttpRequest) -> dict[str, Any]:
        """``GET /agents?search=&top_k=``: agents ranked for ``search`` (all, by name, without)."""
        runtime = runtime_of(kernel)
        top_k = top_k_of(request, runtime)
        found = await runtime.search(request.query.get("search", ""), top_k)
        return {
            "object": "list",
            "data": [entry.as_dict(score) for entry, score in found],
            "ranking": runtime.ranker.last_mode,
        }

    async def register(request: HttpRequest, ctx: RequestContext) -> dict[str, Any]:
        """``POST /{agent}/agents/register``: publish or renew a registration."""
        registry = registry_for(kernel, ctx)
        reg = await registry.register(parse_registration(request.json()), ctx.identity)
        return reg.as_dict(registry.clock())

    async def deregister(request: HttpRequest, ctx: RequestContext) -> dict[str, Any]:
        """``DELETE /{agent}/agents/register/{name}``: remove a registration."""
        registry = registry_for(kernel, ctx)
        name = request.query["name"]
        await registry.deregister(name, ctx.identity)
        return {"object": "registration.deleted", "name": name, "deleted": True}

    return [
        HttpRoute("/agents", list_agents, methods=("GET",)),
        HttpRoute("/{agent}/agents/register", register, methods=("POST",)),
        HttpRoute("/{agent}/agents/register/{name}", deregister, methods=("DELETE",)),
    ]

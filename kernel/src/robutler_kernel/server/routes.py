"""The smaller routes: models, agent info, agent search (read-only, no agent turn)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from robutler_specs import BadRequest, RequestError
from robutler_specs.wire import ModelCard, ModelList

from .door import find_agent
from .responses import encode, internal_error

if TYPE_CHECKING:
    from ..kernel import Kernel

def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded by msgspec."""
    return Response(encode(value), status_code=status, media_type="application/json", headers=headers)


def error_response(error: RequestError) -> Response:
    """An OpenAI-shaped error response."""
    return json_response(error.to_body(), error.status, error.headers or None)


def make_routes(kernel: Kernel) -> dict[str, Any]:
    """The route handlers, closed over ``kernel``."""

    async def models(request: Request) -> Response:
        created = int(time.time())
        names = kernel.listed_agent_names()
        return json_response(ModelList(data=[ModelCard(id=n, created=created) for n in names]))

    async def agent_info(request: Request) -> Response:
        agent = await find_agent(kernel, request.scope, request.path_params["agent"])
        return json_response(agent.info())

    async def agents(request: Request) -> Response:
        query = request.query_params.get("search", "").lower().split()
        try:
            top_k = int(request.query_params.get("top_k", "50"))
        except ValueError:
            raise BadRequest("top_k must be an integer", param="top_k") from None
        scored = []
        for name in kernel.listed_agent_names():
            try:
                # An agent file not loaded yet is loaded here (its info needs the build).
                agent = kernel.agent(name) or await kernel.get_agent(name)
            except RequestError:
                continue  # a broken agent file: its own requests say what is wrong
            if agent is None:
                continue
            info = agent.info()
            haystack = " ".join([name, info["description"], *info["intents"]]).lower()
            score = sum(haystack.count(word) for word in query) if query else 1
            if score:
                scored.append((score, name, info))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return json_response({"object": "list", "data": [info for _, _, info in scored[: max(top_k, 0)]]})

    return {
        "models": models,
        "agent_info": agent_info,
        "agents": agents,
    }


def guarded(handler: Any) -> Any:
    """Wrap a Starlette handler so every failure becomes an OpenAI-shaped error."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except RequestError as exc:
            return error_response(exc)
        except Exception as exc:
            return error_response(internal_error(exc))

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return endpoint


__all__ = ["error_response", "guarded", "json_response", "make_routes"]

"""The smaller routes: models, agent info, agent search, legacy completions, skill HTTP."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from robutler_specs import (
    BadRequest,
    Forbidden,
    HttpRequest,
    Message,
    NotFound,
    RequestContext,
    RequestError,
    Unauthorized,
)
from robutler_specs.wire import CompletionRequest, ModelCard, ModelList

from ..config import RESERVED_AGENT_NAMES
from .chat import headers_of
from .responses import decode_error, encode, internal_error, read_body

if TYPE_CHECKING:
    from ..kernel import Kernel

_completion_decoder = msgspec.json.Decoder(CompletionRequest)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded by msgspec."""
    return Response(encode(value), status_code=status, media_type="application/json", headers=headers)


def error_response(error: RequestError) -> Response:
    """An OpenAI-shaped error response."""
    return json_response(error.to_body(), error.status, error.headers or None)


async def _agent_or_404(kernel: Kernel, name: str, request: Request | None = None) -> Any:
    if name in RESERVED_AGENT_NAMES and request is not None:
        raise NotFound(f"no route {request.method} {request.url.path}", code="route_not_found")
    if not kernel.started:
        await kernel.startup()
    agent = await kernel.get_agent(name)
    if agent is None:
        raise NotFound(f"no agent named {name!r}", code="agent_not_found")
    return agent


def make_routes(kernel: Kernel) -> dict[str, Any]:
    """The route handlers, closed over ``kernel``."""

    async def models(request: Request) -> Response:
        created = int(time.time())
        return json_response(ModelList(data=[ModelCard(id=n, created=created) for n in kernel.agent_names]))

    async def agent_info(request: Request) -> Response:
        agent = await _agent_or_404(kernel, request.path_params["agent"])
        return json_response(agent.info())

    async def agents(request: Request) -> Response:
        query = request.query_params.get("search", "").lower().split()
        try:
            top_k = int(request.query_params.get("top_k", "50"))
        except ValueError:
            raise BadRequest("top_k must be an integer", param="top_k") from None
        scored = []
        for name in kernel.agent_names:
            info = kernel.agent(name).info()  # type: ignore[union-attr]
            haystack = " ".join([name, info["description"], *info["intents"]]).lower()
            score = sum(haystack.count(word) for word in query) if query else 1
            if score:
                scored.append((score, name, info))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return json_response({"object": "list", "data": [info for _, _, info in scored[: max(top_k, 0)]]})

    async def completions(request: Request) -> Response:
        """Legacy text completion (V1 compatibility): the prompt is one user message."""
        body = await request.body()
        try:
            legacy = _completion_decoder.decode(body)
        except msgspec.MsgspecError as exc:
            raise decode_error(exc, "completion request") from None
        if legacy.stream:
            raise BadRequest("stream is not supported on /v1/completions; use /v1/chat/completions", param="stream")
        if not legacy.model:
            raise BadRequest("model is required: set it to the agent's name", param="model")
        agent = await _agent_or_404(kernel, legacy.model)
        prompt = legacy.prompt if isinstance(legacy.prompt, str) else "\n".join(legacy.prompt)
        params = {
            k: getattr(legacy, k)
            for k in ("max_tokens", "temperature", "top_p", "stop", "seed", "user")
            if getattr(legacy, k) is not None
        }
        ctx = RequestContext(agent.spec, [Message(role="user", content=prompt)], params=params, headers=dict(request.headers))
        chat = await agent.complete(ctx)
        choice = chat.choices[0]
        return json_response(
            {
                "id": chat.id.replace("chatcmpl-", "cmpl-"),
                "object": "text_completion",
                "created": chat.created,
                "model": chat.model,
                "choices": [{"index": 0, "text": choice.message.text(), "finish_reason": choice.finish_reason, "logprobs": None}],
                "usage": chat.usage,
            }
        )

    async def skill_http(request: Request) -> Response:
        """A skill's ``@http`` endpoint under ``/{agent}/{path}``."""
        agent = await _agent_or_404(kernel, request.path_params["agent"], request)
        path = request.path_params["path"].strip("/")
        if path == "chat/completions":
            raise RequestError(
                f"{request.method} is not allowed on {request.url.path}; use POST",
                status=405, code="method_not_allowed",
            )
        endpoint = agent.http_endpoint(path, request.method)
        if endpoint is None:
            raise NotFound(f"agent {agent.name!r} has no endpoint {request.method} /{path}", code="route_not_found")
        info, fn = endpoint
        ctx = RequestContext(agent.spec, [], headers=headers_of(request.scope))
        if agent.hooks.implemented("on_connection"):
            await agent.hooks.call("on_connection", ctx=ctx)
        if not ctx.identity.allows(info.scope):
            message = f"this endpoint needs the {info.scope!r} scope"
            if ctx.identity.user_id is None:
                raise Unauthorized(message, headers={"WWW-Authenticate": 'Bearer realm="robutler"'})
            raise Forbidden(message)
        http_request = HttpRequest(
            method=request.method,
            path=path,
            query=dict(request.query_params),
            headers=headers_of(request.scope),
            body=await request.body(),
        )
        result = fn(ctx, http_request)
        if hasattr(result, "__await__"):
            result = await result
        return json_response(result, headers=ctx.response_headers or None)

    return {
        "models": models,
        "agent_info": agent_info,
        "agents": agents,
        "completions": completions,
        "skill_http": skill_http,
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


__all__ = ["error_response", "guarded", "json_response", "make_routes", "read_body"]

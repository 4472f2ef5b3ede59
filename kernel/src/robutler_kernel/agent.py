"""An agent: what is fixed when it is built. Requests to it are :class:`~.turn.Turn` s."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import msgspec
import pluggy

from robutler_specs import (
    FORWARDED_PARAMS,
    AgentSpec,
    BadRequest,
    ChatCompletion,
    ChatCompletionChunk,
    Handoff,
    Message,
    PluginError,
    RequestContext,
    Skill,
    ToolDefinition,
    ToolSpec,
)
from robutler_specs.tools import HttpInfo, PromptInfo

from .hooks import SkillHookCaller
from .llm import LLMCalls
from .network import handoff_tools
from .turn import Turn

if TYPE_CHECKING:
    from .kernel import Kernel

log = logging.getLogger("robutler.agent")

Prompt = tuple[PromptInfo, Callable[..., Any], bool]


class Agent:
    """One configured agent: what is fixed when it is built (spec, skill instances,
    hooks, tools, prompts, endpoints, models). A request to it is a :class:`Turn`
    (:meth:`turn`); ``run`` / ``run_streaming`` serve library use.
    """

    def __init__(
        self,
        spec: AgentSpec,
        skills: Sequence[Skill],
        pm: pluggy.PluginManager,
        tools: Sequence[ToolSpec] = (),
        *,
        kernel: Kernel | None = None,
    ) -> None:
        self.spec = spec
        #: The kernel that built the agent (handoffs run its other agents).
        self.kernel = kernel
        self.name = spec.name
        self.skills = list(skills)
        self.hooks = SkillHookCaller(pm)
        self.llm = LLMCalls(spec.name, self.hooks, self.skills, spec.retry)
        #: Called as ``observer(ctx, error)`` after ``finalize_connection`` (metrics).
        self.observers: list[Callable[[RequestContext, BaseException | None], None]] = []
        self.tools: dict[str, ToolSpec] = {}
        transfers = handoff_tools(spec, kernel.agents if kernel is not None else {})
        #: Handoff targets by their tool's name (``transfer_to_<name>``).
        self.handoffs: dict[str, Handoff] = {name: target for name, (target, _) in transfers.items()}
        handoff_specs = [tool for _, tool in transfers.values()]
        for tool in [t for s in self.skills for t in s.tools()] + list(tools) + handoff_specs:
            if tool.name in self.tools:
                raise PluginError(
                    f"agent {spec.name!r}: tool {tool.name!r} is defined by both "
                    f"{self.tools[tool.name].plugin or 'config'} and {tool.plugin or 'config'}"
                )
            self.tools[tool.name] = tool
        self._public_tools = {n: t for n, t in self.tools.items() if t.scope == "all"}
        self._public_definitions = [t.definition for t in self._public_tools.values()]
        prompts: list[Prompt] = []
        for skill in self.skills:
            for info, fn in skill.prompts():
                prompts.append((info, fn, bool(inspect.signature(fn).parameters)))
        self.prompts = sorted(prompts, key=lambda p: p[0].priority)
        self._http: dict[tuple[str, str], tuple[HttpInfo, Callable[..., Any]]] = {}
        for skill in self.skills:
            for http_info, fn in skill.http_endpoints():
                for method in http_info.methods:
                    self._http[(http_info.path, method)] = (http_info, fn)

    def model_for(self, requested: str | None) -> str | list[str]:
        """The model (or fallback list) a request runs on.

        The agent's own, when the request's ``model`` field is empty, the agent's name or
        the agent's first model; the one named, when it is another of the agent's models or
        one of its ``allowed_models`` (then without fallback: the caller chose it);
        otherwise a 400 that lists what may be asked for.
        """
        spec = self.spec
        if not requested or requested == self.name or requested == spec.models[0]:
            return spec.model
        if requested in spec.models or requested in spec.allowed_models:
            return requested
        allowed = ", ".join(self.requestable_models())
        raise BadRequest(
            f"agent {self.name!r} does not allow model {requested!r}; ask for one of: {allowed} "
            f"(or send the agent's name, {self.name!r}, for its default)",
            param="model",
            code="model_not_allowed",
        )

    def requestable_models(self) -> list[str]:
        """Every model a request may ask for: the agent's list, then its allowed models."""
        return self.spec.models + [m for m in self.spec.allowed_models if m not in self.spec.models]

    def http_endpoint(self, path: str, method: str) -> tuple[HttpInfo, Callable[..., Any]] | None:
        """The skill ``@http`` endpoint serving ``method /{agent}/{path}``, if any (the
        path as requested: a trailing slash is another path)."""
        return self._http.get((path, method.upper()))

    def http_methods(self, path: str) -> list[str]:
        """The methods the agent's ``@http`` endpoints take on ``path``."""
        return [method for (p, method) in self._http if p == path]

    # -- entry points ----------------------------------------------------------------

    def context(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        *,
        stream: bool = False,
        tools: Sequence[ToolDefinition | Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        model: str | None = None,
        **params: Any,
    ) -> RequestContext:
        """A new request context for ``messages`` (Messages or dicts) and LLM params;
        ``model`` picks one of the agent's models or ``allowed_models``."""
        unknown = set(params) - set(FORWARDED_PARAMS)
        if unknown:
            raise TypeError(f"unknown LLM parameters: {', '.join(sorted(unknown))}")
        return RequestContext(
            self.spec,
            msgspec.convert(list(messages), list[Message]),
            params={k: v for k, v in params.items() if v is not None},
            client_tools=msgspec.convert(list(tools or []), list[ToolDefinition]),
            stream=stream,
            headers=headers,
            request_id=request_id,
            requested_model=model,
        )

    async def run(self, messages: Sequence[Message | Mapping[str, Any]], **params: Any) -> ChatCompletion:
        """Answer a conversation (library use): the full loop, one completion."""
        return await self.complete(self.context(messages, **params))

    async def run_streaming(
        self, messages: Sequence[Message | Mapping[str, Any]], **params: Any
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Answer a conversation as a stream of chunks (library use)."""
        async with aclosing(self.stream(self.context(messages, stream=True, **params))) as chunks:
            async for chunk in chunks:
                yield chunk

    def turn(self, ctx: RequestContext, *, timeout: float | None = None) -> Turn:
        """The lifecycle of one request to this agent (see :class:`~robutler_kernel.turn.Turn`)."""
        return Turn(self, ctx, timeout=timeout)

    async def complete(self, ctx: RequestContext) -> ChatCompletion:
        """Answer ``ctx`` as one completion (a :class:`Turn` with no deadline)."""
        return await Turn(self, ctx).complete()

    def stream(self, ctx: RequestContext, *, include_usage: bool = False) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Answer ``ctx`` as chunks (a :class:`Turn` with no deadline)."""
        return Turn(self, ctx).stream(include_usage=include_usage)

    def definitions(self, tools: Mapping[str, ToolSpec]) -> list[ToolDefinition]:
        """The definitions of ``tools`` (cached for the public set)."""
        if tools is self._public_tools:
            return self._public_definitions
        return [t.definition for t in tools.values()]

    def permitted_tools(self, ctx: RequestContext) -> dict[str, ToolSpec]:
        """The tools this caller may see and run: agent tools and request overlay,
        filtered by scope."""
        extra = ctx.extra_tools
        if ctx.identity.scopes == ("all",) and not extra:
            return self._public_tools
        allowed = {n: t for n, t in self.tools.items() if ctx.identity.allows(t.scope)}
        allowed.update((n, t) for n, t in extra.items() if ctx.identity.allows(t.scope))
        return allowed

    async def system_prompt(self, ctx: RequestContext) -> str:
        """Instructions, then ``@prompt`` fragments the caller may see, then
        ``build_prompt`` fragments."""
        parts = [self.spec.instructions]
        for info, fn, takes_ctx in self.prompts:
            if not ctx.identity.allows(info.scope):
                continue
            value = fn(ctx) if takes_ctx else fn()
            if inspect.isawaitable(value):
                value = await value
            parts.append(value)
        parts.extend(await self.hooks.build_prompt(ctx))
        return "\n\n".join(p for p in parts if p)

    def info(self) -> dict[str, Any]:
        """Public agent info: name, description, skills, public tools, models, intents."""
        return {
            "name": self.name,
            "description": self.spec.description,
            "model": self.spec.model,
            "models": self.requestable_models(),
            "allowed_models": self.spec.allowed_models,
            # Models of the fallback list tried last for now, and the seconds left.
            "open_models": self.llm.breaker.open_models(),
            "skills": [s.name for s in self.skills],
            "tools": [
                {
                    "name": t.name,
                    "description": t.description,
                    "plugin": t.plugin,
                    "pricing": None if t.pricing is None else {"credits": t.pricing.credits, "per": t.pricing.per},
                }
                for t in self._public_tools.values()
            ],
            "intents": self.spec.intents,
            "metadata": self.spec.metadata,
            "skill_info": {s.name: d for s in self.skills if (d := s.describe()) is not None},
        }

"""Per-request state and the values hooks receive.

Everything that belongs to one request lives in its :class:`RequestContext`; skill
instances are shared by all requests of an agent, so a skill keeps request state in
``ctx.state`` (by convention under its own name), never on ``self``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from .agent import AgentSpec
from .errors import BadRequest
from .jsondepth import MAX_JSON_DEPTH, too_deep
from .tools import SCOPES, ToolSpec, build_tool_spec
from .wire import Message, PromptTokensDetails, ToolDefinition, Usage


class Identity(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who is calling. The auth skill sets ``ctx.identity``; anonymous otherwise.

    ``scopes`` grow ``all`` < ``owner`` < ``admin``: an admin may do what an owner may,
    an owner what anyone may.
    """

    user_id: str | None = None
    scopes: tuple[str, ...] = ("all",)
    source: str | None = None
    attributes: dict[str, Any] = {}

    def allows(self, scope: str) -> bool:
        """Whether this identity may see and use something of ``scope``."""
        if scope == "all":
            return True
        level = SCOPES.index(scope)
        return any(s in SCOPES and SCOPES.index(s) >= level for s in self.scopes)


ANONYMOUS = Identity()


class UsageRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One metered event of a request: an LLM call (each attempt) or a tool call.

    ``plugin`` names who produced it; ``estimated`` marks token counts that were
    estimated because the provider gave none; ``credits`` is filled by pricing skills.
    ``cache_read_tokens`` / ``cache_write_tokens`` are the part of ``prompt_tokens`` the
    provider read from / wrote to its prompt cache. ``attempt`` numbers the tries of one
    tool-loop round (retries and fallback models); a failed try has ``ok=False`` and its
    ``error``.

    Another agent's work in this request (a handoff, an agent-to-agent call) is recorded
    here too, with ``agent`` naming that agent: its LLM calls (``kind="llm"``) count in the
    request's tokens but are never priced by this agent's skills, and one ``kind="agent"``
    record carries what that agent cost (``credits``; for a remote agent, whose calls are not
    seen here, its tokens too). ``paid`` says that cost was already
    charged to this request's payer (a local handoff charges the same account); when it is
    ``False`` (a remote agent charged this agent's own credentials) a pricing skill of this
    agent passes ``credits`` on to its payer.
    """

    kind: str
    name: str
    plugin: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = False
    credits: float | None = None
    attempt: int = 1
    ok: bool = True
    error: str | None = None
    duration_ms: float = 0.0
    agent: str | None = None
    paid: bool = False


class LLMCall(msgspec.Struct, kw_only=True):
    """One call to an LLM provider. ``before_llm_call`` hooks may edit it in place.

    :ivar model: ``"<provider>/<model>"``, e.g. ``"openai/gpt-4o-mini"``.
    :ivar messages: the full message list sent (system prompt first).
    :ivar tools: the tool definitions offered (internal and client tools).
    :ivar params: provider parameters (``temperature``, ``max_tokens``, ``stop``...).
    :ivar stream: whether the provider should stream.
    :ivar round: the tool-loop round, starting at 0.
    :ivar attempt: the attempt number for this round, starting at 1.
    :ivar fallbacks: the models tried after ``model`` when it fails (the rest of the
        agent's list, models whose circuit is open last); a hook may change it.
    :ivar headers: extra HTTP headers for this call's upstream request, which provider
        plugins send beside their own (never to replace the credentials); a
        ``before_llm_call`` hook sets them (the otel skill's ``traceparent``). A retry
        starts with the previous try's.
    """

    model: str
    messages: list[Message]
    tools: list[ToolDefinition] = []
    params: dict[str, Any] = {}
    stream: bool = False
    round: int = 0
    attempt: int = 1
    fallbacks: list[str] = []
    headers: dict[str, str] = {}

    @property
    def provider(self) -> str:
        """The provider prefix of ``model`` (``"openai"``)."""
        return self.model.split("/", 1)[0]

    @property
    def model_name(self) -> str:
        """``model`` without its provider prefix (``"gpt-4o-mini"``)."""
        return self.model.split("/", 1)[-1]


class AgentCall(msgspec.Struct, kw_only=True):
    """A call to a remote agent (``agent_complete`` / ``agent_stream``).

    :ivar url: the agent's base URL (``https://host/agent``: its chat completions are at
        ``{url}/chat/completions``).
    :ivar messages: the conversation to send.
    :ivar stream: whether to stream.
    :ivar budget: the most the callee may charge, in credits (``X-Authorized-Amount``);
        ``None`` when the caller has no pricing skill (send none).
    :ivar chain: the agents the request passed through, the caller last
        (``X-Robutler-Chain``: the callee refuses loops and depth beyond its limit).
    :ivar timeout: seconds the call may take; ``None`` for the skill's default.
    """

    url: str
    messages: list[Message]
    stream: bool = False
    budget: float | None = None
    chain: list[str] = []
    timeout: float | None = None


class LLMResult(msgspec.Struct, kw_only=True):
    """What a provider's ``llm_complete`` returns: one assistant message."""

    message: Message
    finish_reason: str = "stop"
    usage: Usage = msgspec.field(default_factory=Usage)
    model: str | None = None


class ToolInvocation(msgspec.Struct, kw_only=True):
    """A tool call the model made, about to run (or a handoff).

    :ivar id: the tool call id.
    :ivar name: the tool name the model used.
    :ivar arguments: the raw JSON argument string from the model.
    :ivar tool: the resolved tool; ``None`` when no permitted tool has that name.
    :ivar round: the tool-loop round.
    :ivar messages: for a handoff to another agent: the conversation it receives;
        ``before_handoff`` hooks may edit it in place (filter what leaves the agent).
    """

    id: str
    name: str
    arguments: str
    tool: ToolSpec | None = None
    round: int = 0
    messages: list[Message] | None = None


class ToolResult(msgspec.Struct, kw_only=True):
    """The result of a tool call, as the model will see it (``content``)."""

    content: str
    is_error: bool = False
    plugin: str | None = None


class HttpRequest(msgspec.Struct, kw_only=True):
    """An HTTP request to a skill's ``@http`` endpoint."""

    method: str
    path: str
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    body: bytes = b""

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when empty).

        :raises BadRequest: the body is not JSON, or nests deeper than ``MAX_JSON_DEPTH``
            (the client gets a 400 that says so).
        """
        if not self.body:
            return None
        if too_deep(self.body) is not None:
            raise BadRequest(
                f"the request body nests deeper than {MAX_JSON_DEPTH} levels; flatten it",
                code="json_too_deep",
            )
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"the request body is not valid JSON ({exc})", code="invalid_json") from None


class RequestContext:
    """Everything about one request. Created by the kernel; passed to every hook.

    :ivar request_id: unique id; also the completion id (``chatcmpl-...``).
    :ivar agent: the agent's spec.
    :ivar messages: the conversation as the client sent it.
    :ivar params: LLM parameters from the request (forwarded to the provider).
    :ivar client_tools: tools the client sent; calls to them go back to the client.
    :ivar stream: whether the client asked for a stream.
    :ivar headers: request headers, lower-case names.
    :ivar identity: the caller; set by an auth skill in ``on_connection``.
    :ivar usage: every metered event of the request.
    :ivar state: scratch space for skills, keyed by skill name by convention.
    :ivar response_headers: headers to add to the HTTP response (before it starts).
    :ivar model: the model (or fallback list) this request runs on: the agent's, or the
        one ``requested_model`` names once the kernel has checked it is allowed (after
        ``on_connection``, so that only an authenticated caller learns what is).
    :ivar requested_model: the request's ``model`` field on ``/{agent}/...`` (``None`` on
        ``/v1``, where it names the agent).
    :ivar cost: what the request cost, in credits, when a pricing skill set it (it is
        reported as ``usage.cost``, with what other agents of the chain charged).
    :ivar chain: the agents this request passed through before this one (handoffs and
        agent-to-agent calls; the first is where it came in), for depth and loop checks.
    :ivar budget: set by a pricing skill: a callable giving the credits left of what the
        payer authorized for this request; handoffs and agent calls pass it on as the
        callee's ``X-Authorized-Amount``, so a chain never spends more.
    :ivar answered_by: the agent whose answer this is, when a handoff passed it on.
    :ivar forward_headers: headers this request passes on to the agents it calls
        (handoffs, ``ask_agent``): a local agent's request gets them among its
        ``headers``, and a plugin calling remote agents (nli) sends them. Skills add to
        it (the otel skill's ``traceparent``); any ``Mapping`` will do: it is read when
        each call is made.
    """

    __slots__ = (
        "_extra_tools",
        "agent",
        "answered_by",
        "budget",
        "chain",
        "client_tools",
        "cost",
        "created",
        "forward_headers",
        "headers",
        "identity",
        "messages",
        "model",
        "params",
        "request_id",
        "requested_model",
        "response_headers",
        "state",
        "stream",
        "usage",
    )

    def __init__(
        self,
        agent: AgentSpec,
        messages: list[Message],
        *,
        params: dict[str, Any] | None = None,
        client_tools: list[ToolDefinition] | None = None,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        identity: Identity = ANONYMOUS,
        model: str | list[str] | None = None,
        requested_model: str | None = None,
        chain: tuple[str, ...] = (),
    ) -> None:
        self.request_id = request_id or f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.agent = agent
        self.messages = messages
        self.params = params or {}
        self.client_tools = client_tools or []
        self.stream = stream
        self.headers: Mapping[str, str] = headers or {}
        self.identity = identity
        self.usage: list[UsageRecord] = []
        self.state: dict[str, Any] = {}
        self.response_headers: dict[str, str] = {}
        self.model: str | list[str] = model if model is not None else agent.model
        self.requested_model = requested_model
        self.cost: float | None = None
        self.chain = chain
        self.budget: Callable[[], float | None] | None = None
        self.answered_by: str | None = None
        self.forward_headers: Mapping[str, str] = {}
        self._extra_tools: dict[str, ToolSpec] | None = None

    def add_tool(self, fn: Callable[..., Any] | ToolSpec, *, plugin: str | None = None) -> ToolSpec:
        """Add a tool for this request only (a request-scoped overlay that never leaks).

        ``fn`` is a ``@tool``-decorated callable, a plain callable, or a ``ToolSpec``.
        """
        spec = fn if isinstance(fn, ToolSpec) else build_tool_spec(fn, plugin=plugin)
        if self._extra_tools is None:
            self._extra_tools = {}
        self._extra_tools[spec.name] = spec
        return spec

    @property
    def extra_tools(self) -> Mapping[str, ToolSpec]:
        """Tools added to this request with :meth:`add_tool`."""
        return self._extra_tools or {}

    def remaining_budget(self) -> float | None:
        """Credits left of what the payer authorized (``None``: no pricing skill says)."""
        return None if self.budget is None else self.budget()

    def total_usage(self) -> Usage:
        """Token usage summed over every LLM record (other agents' included), and the cost:
        this request's own charge plus what other agents of the chain charged the payer."""
        total = Usage()
        cache_read = cache_write = 0
        paid = 0.0
        paid_any = False
        for record in self.usage:
            if record.kind == "agent":
                total.prompt_tokens += record.prompt_tokens
                total.completion_tokens += record.completion_tokens
                if record.paid and record.credits is not None:
                    paid += record.credits
                    paid_any = True
            elif record.kind == "llm":
                total.prompt_tokens += record.prompt_tokens
                total.completion_tokens += record.completion_tokens
                cache_read += record.cache_read_tokens
                cache_write += record.cache_write_tokens
                if record.estimated:
                    total.estimated = True
        total.total_tokens = total.prompt_tokens + total.completion_tokens
        if cache_read or cache_write:
            total.prompt_tokens_details = PromptTokensDetails(cache_read, cache_write)
        if self.cost is not None or paid_any:
            total.cost = round((self.cost or 0.0) + paid, 6)
        return total

    @property
    def user_message(self) -> Message | None:
        """The last user message of the conversation, if any."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message
        return None

    def __repr__(self) -> str:
        return f"<RequestContext {self.request_id} agent={self.agent.name!r}>"


__all__ = [
    "ANONYMOUS",
    "AgentCall",
    "HttpRequest",
    "Identity",
    "LLMCall",
    "LLMResult",
    "RequestContext",
    "ToolInvocation",
    "ToolResult",
    "UsageRecord",
]

"""Hook specifications: the plugin API reference.

Two kinds of hooks:

* **Skill hooks** (:class:`SkillHooks`) are ``@hookimpl`` methods on :class:`~robutler_specs.Skill`
  instances. Each agent has its own plugin manager holding its skill instances; hooks run in
  skill ``priority`` order (lower first) for every request, in the order listed here.
* **Kernel hooks** (:class:`KernelHooks`) are ``@hookimpl`` functions on plugin *modules*
  (the module an entry point names). They run once per kernel, not per request.

Any hook may be ``async def``: the kernel awaits each implementation in order. Where a
hook says "firstresult", the kernel stops at the first implementation whose (awaited) result
is not ``None``. A hook implementation may accept any subset of the parameters listed.

A hook stops a request by raising :class:`~robutler_specs.errors.RequestError` (or a subclass:
``Unauthorized``, ``PaymentRequired``, ``Forbidden``, ``ContentBlocked``...), which the client
receives as an OpenAI-shaped error with that status. Any other exception is reported as a 500
naming the plugin and hook. ``finalize_connection`` always runs, whatever happened.

Every way into an agent (the chat routes, ``/v1/completions``, ``@http`` endpoints, plugin
routes that act for an agent) runs the same lifecycle, so these hooks see all of them: a
request that is not a chat has no messages and no LLM stage, but ``on_connection`` and
``finalize_connection`` run for it just the same.

``tryfirst=True`` / ``trylast=True`` move an implementation to the front or the back.
pluggy's wrappers (``wrapper=True``, ``hookwrapper=True``) are refused when the agent is
built, with an error naming the plugin and hook: the kernel awaits implementations one after
another and cannot run a wrapper around the others. ``ROBUTLER_TRACE_HOOKS=1`` logs every
hook call with its plugin and duration (logger ``robutler.hooks``, level INFO).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .markers import hookspec

if TYPE_CHECKING:
    from .agent import AgentSpec
    from .context import AgentCall, LLMCall, LLMResult, RequestContext, ToolInvocation, ToolResult
    from .routes import HttpRoute
    from .skill import KernelAPI, Skill
    from .store import StateStore
    from .wire import ChatCompletion, ChatCompletionChunk, Message


class SkillHooks:
    """Per-agent hooks, implemented as ``@hookimpl`` methods of Skill instances."""

    # -- request stage -------------------------------------------------------------------

    @hookspec
    def on_connection(self, ctx: RequestContext) -> None:
        """Called first for every request, before anything is sent to a model.

        Authenticate (set ``ctx.identity``), check credits, load memory. Raise a
        ``RequestError`` (``Unauthorized``, ``PaymentRequired``...) to refuse the request;
        ``finalize_connection`` still runs.

        :param ctx: the request context.
        :return: ignored.
        """

    @hookspec
    def build_prompt(self, ctx: RequestContext) -> str | None:
        """Contribute a fragment to the system prompt.

        Every non-empty result is collected (in priority order) and appended after the
        agent's ``instructions`` and the skills' ``@prompt`` fragments.

        :param ctx: the request context.
        :return: a fragment, or ``None`` to add nothing.
        """

    @hookspec
    def on_message(self, ctx: RequestContext, message: Message) -> Message | None:
        """Called with each complete message: first the incoming user message (the last
        ``user`` message of the request), later the final assistant message.

        Check it (raise ``ContentBlocked`` to refuse) or rewrite it.

        :param ctx: the request context.
        :param message: the message; ``message.role`` says which one it is.
        :return: a replacement message (the next implementation sees it), or ``None``
            to keep it.
        """

    # -- LLM stage -----------------------------------------------------------------------

    @hookspec
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        """Called before every LLM call (each round of the tool loop, each attempt).

        Edit ``call`` in place: its ``messages``, ``tools``, ``params``, ``model`` or
        ``headers`` (extra HTTP headers the provider sends upstream: trace context). A
        retry or a fallback model is a new call (``call.attempt`` > 1, maybe another
        ``model``) that starts from the previous try's, edits included; raising here ends
        the request with that error (a pricing skill refusing a dearer fallback model).

        :param ctx: the request context.
        :param call: the call about to be made.
        :return: ignored.
        """

    @hookspec(firstresult=True)
    def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult | None:
        """Answer a non-streamed LLM call. Stops at first non-None result.

        A provider skill answers only when ``call.provider`` is its own prefix and returns
        ``None`` otherwise. Raise ``ProviderError`` (502), ``ProviderTimeout`` (504),
        ``RateLimited`` (429, ``Retry-After`` in ``headers``) or ``ServiceUnavailable`` (503)
        on upstream failure. Try once: the kernel retries errors marked ``retryable`` (with
        backoff, then the agent's next model), so a provider's own retries must be off. Each
        try is a new call with ``call.attempt`` counting up (and maybe another ``model``).

        :param ctx: the request context.
        :param call: the call; ``call.model_name`` is the provider's model name.
        :return: the assistant message with finish reason and usage, or ``None``.
        """

    @hookspec(firstresult=True)
    def llm_stream(
        self, ctx: RequestContext, call: LLMCall
    ) -> AsyncIterator[ChatCompletionChunk] | None:
        """Answer a streamed LLM call. Stops at first non-None result.

        Same selection rule as ``llm_complete``. Return an async iterator of OpenAI-shaped
        chunks: text deltas, tool-call deltas (with ``index``; ``id`` and ``function.name``
        on a call's first delta), a ``finish_reason`` on the last choice, and ``usage`` on
        any chunk (usually the last). The kernel re-stamps ``id``, ``created`` and ``model``.
        If the client goes away the kernel closes the iterator (``aclose``), which must
        cancel the upstream request. Raise upstream errors as ``llm_complete`` does; the
        kernel retries a stream only while none of its text reached the client. A stream
        that ends without a ``finish_reason`` was cut short: the kernel meters what arrived
        as a failed try and ends the client's stream with an error (502
        ``provider_incomplete``), so raise as soon as the upstream's protocol says the
        answer broke off (no ``[DONE]``, no ``message_stop``).

        :param ctx: the request context.
        :param call: the call.
        :return: an async iterator of chunks, or ``None``.
        """

    @hookspec
    def after_llm_call(self, ctx: RequestContext, call: LLMCall, result: LLMResult) -> None:
        """Called after every successful LLM call, with the assembled result (for a stream:
        after its last chunk). Meter tokens, check the output (raise ``ContentBlocked``).

        :param ctx: the request context.
        :param call: the call made.
        :param result: the assistant message, finish reason and usage.
        :return: ignored.
        """

    # -- other agents --------------------------------------------------------------------

    @hookspec(firstresult=True)
    def agent_complete(self, ctx: RequestContext, call: AgentCall) -> ChatCompletion | None:
        """Ask a remote agent (``call.url``) for one completion. Stops at first non-None result.

        The kernel calls it for a handoff to a URL (``handoffs: [https://...]``); a plugin
        that talks to other agents (``nli``) implements it. Send ``call.messages`` with
        ``call.budget`` as ``X-Authorized-Amount`` and ``call.chain`` as
        ``X-Robutler-Chain``, and ``ctx.forward_headers`` (trace context) beside them;
        return the callee's completion, its ``usage.cost`` being what it charged. Raise a
        ``RequestError`` (``ProviderError`` 502...) when it fails.

        :param ctx: the calling request's context.
        :param call: where to, what, and the budget.
        :return: the callee's completion, or ``None`` if this skill does not call agents.
        """

    @hookspec(firstresult=True)
    def agent_stream(self, ctx: RequestContext, call: AgentCall) -> AsyncIterator[ChatCompletionChunk] | None:
        """Ask a remote agent for a streamed completion. Stops at first non-None result.

        As ``agent_complete``; return the callee's chunks (the last ones carry
        ``finish_reason`` and ``usage`` with its ``cost``). Closing the iterator must end
        the remote request.

        :param ctx: the calling request's context.
        :param call: where to, what, and the budget.
        :return: an async iterator of chunks, or ``None``.
        """

    # -- tool stage ----------------------------------------------------------------------

    @hookspec(firstresult=True)
    def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> ToolResult | None:
        """Called before an internal tool runs (scope is already checked).

        Check price or policy. Stops at first non-None result: returning a ``ToolResult``
        vetoes the call and that result is what the model sees.

        :param ctx: the request context.
        :param call: the invocation (``call.tool`` is the resolved tool).
        :return: a result replacing the call, or ``None`` to let it run.
        """

    @hookspec
    def after_toolcall(
        self, ctx: RequestContext, call: ToolInvocation, result: ToolResult
    ) -> ToolResult | None:
        """Called after an internal tool ran (or failed: ``result.is_error``).

        Charge for it, audit it, rewrite it.

        :param ctx: the request context.
        :param call: the invocation.
        :param result: what the tool returned, as the model will see it.
        :return: a replacement result (the next implementation sees it), or ``None``.
        """

    @hookspec(firstresult=True)
    def before_handoff(self, ctx: RequestContext, handoff: ToolInvocation) -> ToolResult | None:
        """Called before a handoff runs. Filter what leaves the agent (raise to refuse).

        For a handoff to another agent (``handoffs:``), ``handoff.messages`` is the
        conversation the target receives: edit it in place. Stops at first non-None result:
        returning a ``ToolResult`` replaces the handoff (its content is the answer).
        A ``RequestError`` raised for such a handoff refuses it as any failure before the
        target answered: the model reads ``Error: the handoff to <agent> failed: <message>``
        and goes on (a policy refusing a destination); for a ``@handoff`` method it ends
        the request with that error.

        :param ctx: the request context.
        :param handoff: the invocation of the ``@handoff`` method.
        :return: a result replacing the handoff, or ``None``.
        """

    @hookspec
    def after_handoff(
        self, ctx: RequestContext, handoff: ToolInvocation, result: ToolResult
    ) -> ToolResult | None:
        """Called after a handoff returned. Audit or rewrite what came back.

        :param ctx: the request context.
        :param handoff: the invocation.
        :param result: the handoff's result (it becomes the final answer).
        :return: a replacement result, or ``None``.
        """

    # -- response stage ------------------------------------------------------------------

    @hookspec
    def on_chunk(
        self, ctx: RequestContext, chunk: ChatCompletionChunk
    ) -> ChatCompletionChunk | None:
        """Called for each chunk streamed to the client (stream requests only).

        Every chunk passes here, in order, the role chunk first and the chunk with
        ``finish_reason`` last (after ``finalize_connection``). An implementation may hold
        text back (a filter that needs to see what follows): return the chunk with less
        ``content`` (``""`` to send none yet) and put the rest on a later chunk, at the
        latest on the last one, which may carry ``content`` beside ``finish_reason``.

        :param ctx: the request context.
        :param chunk: the chunk about to be sent.
        :return: a replacement chunk (the next implementation sees it), or ``None``.
        """

    @hookspec
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        """ALWAYS called last: on success, on error, and when the client went away.

        Settle payment, write memory, record metrics. Every implementation runs even if
        another raises (errors are logged, never sent to the client). On success it runs
        after the answer is complete but before it is sent (JSON) or before the final
        chunk (stream), so ``ctx.cost`` and ``ctx.response_headers`` set here reach the
        client (headers: JSON responses only; a stream's headers are already sent).

        :param ctx: the request context (``ctx.usage`` holds every metered event).
        :param error: what ended the request early (a ``RequestError``, a
            ``asyncio.CancelledError`` when the client disconnected, ...), or ``None``.
        :return: ignored.
        """


class KernelHooks:
    """Kernel-level hooks, implemented as ``@hookimpl`` functions of a plugin module."""

    @hookspec
    def robutler_skills(self) -> Sequence[type[Skill]]:
        """Return the Skill classes this plugin provides.

        :return: a list of :class:`~robutler_specs.Skill` subclasses.
        """

    @hookspec
    def robutler_startup(self, kernel: KernelAPI) -> None:
        """Called once when the kernel starts (inside the ASGI lifespan). Open pools.

        :param kernel: the kernel, as :class:`~robutler_specs.KernelAPI`: ``kernel.agents``
            maps agent names to ``AgentSpec`` and ``kernel.state`` is a dict plugins may use.
        :return: ignored.
        """

    @hookspec
    def robutler_shutdown(self, kernel: KernelAPI) -> None:
        """Called once when the kernel stops. Close what ``robutler_startup`` opened.

        :param kernel: the kernel.
        :return: ignored.
        """

    @hookspec(firstresult=True)
    def robutler_resolve_agent(self, name: str) -> AgentSpec | None:
        """Resolve an agent that is not in the config (dynamic agents). Stops at first
        non-None result.

        :param name: the requested agent name.
        :return: the agent's spec, or ``None`` if this plugin does not know it.
        """

    @hookspec
    def robutler_health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]] | None:
        """Return named health checks for ``/health/detailed`` and ``/ready``.

        Each check is an async callable; it passes unless it raises (its return value, if
        any, is shown as detail). The kernel runs them concurrently with a timeout.

        :return: a mapping of check name to async callable, or ``None``.
        """

    @hookspec
    def robutler_routes(self, kernel: KernelAPI) -> Sequence[HttpRoute] | None:
        """Return extra HTTP routes served by the kernel (outside any agent).

        Called once when the kernel builds its app. Plugin routes are matched before the
        kernel's own ``GET /agents``, so a plugin may serve that path instead (discovery).

        :param kernel: the kernel that will serve the routes, so a kernel-wide handler can
            keep it (``kernel.agents``, ``kernel.state``, ``kernel.embed``) even when several
            kernels share one process; an implementation may leave the parameter out.
        :return: a list of :class:`~robutler_specs.HttpRoute`, or ``None``.
        """

    @hookspec
    def robutler_commands(self) -> Mapping[str, Callable[[list[str], Mapping[str, Any]], int]] | None:
        """Add sub-commands to ``robutler-kernel``.

        ``robutler-kernel NAME [--config FILE] ARGS...`` calls ``command(args, settings)``
        with the remaining arguments (parse them with your own ``argparse``) and the
        ``plugins.<plugin>`` section of the config; its return value is the exit code.

        :return: a mapping of command name to callable, or ``None``.
        """

    @hookspec(firstresult=True)
    def robutler_state_store(self, kernel: KernelAPI) -> StateStore | None:
        """Provide the kernel's shared key-value store (``kernel.state_store``). Stops at
        first non-None result.

        Called once at start-up, after ``robutler_startup``. Without an answer the kernel
        keeps its own in-process store: fine for one process; replicas need a shared one.

        :param kernel: the kernel.
        :return: a :class:`~robutler_specs.StateStore`, or ``None``.
        """

    @hookspec(firstresult=True)
    def robutler_embed(
        self, texts: list[str], model: str | None, kernel: KernelAPI
    ) -> list[list[float]] | None:
        """Embed texts as vectors. Stops at first non-None result.

        :param texts: the texts to embed.
        :param model: ``"<provider>/<model>"`` to ask a given provider, or ``None`` for any.
        :param kernel: the kernel asking (``kernel.state`` holds what ``robutler_startup``
            opened, so a provider can embed through its live clients).
        :return: one vector per text, or ``None`` if this plugin cannot embed.
        """


#: Hook names of each kind, for tools and meta-tests.
SKILL_HOOKS: tuple[str, ...] = tuple(n for n in vars(SkillHooks) if not n.startswith("_"))
KERNEL_HOOKS: tuple[str, ...] = tuple(n for n in vars(KernelHooks) if not n.startswith("_"))

__all__ = ["KERNEL_HOOKS", "SKILL_HOOKS", "KernelHooks", "SkillHooks"]

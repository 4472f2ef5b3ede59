"""The ``guardrails`` skill: what may come in, what may go out, and where it may go.

Priority 8, in the security band: after ``auth`` (5, so the caller is known and an
unauthenticated request costs no checking) and before ``payments`` (10, so a blocked
request reserves nothing) and every other skill (memory, 60, stores only what this
skill left).

Where each part runs:

* ``on_connection``: the input (size, patterns, injection, PII) of the client's messages,
  before any model or other skill sees them; a block is a 400 ``content_blocked`` naming
  the rule, never the matched text.
* ``before_llm_call``: denied tools and refused handoffs are not offered to the model.
* ``after_llm_call`` / ``on_message``: each answer redacted whole (what memory stores
  and ``on_message`` sees); ``on_chunk``: the same redaction on a stream, exact across
  chunks (:class:`~.detectors.StreamRedactor`), the undecided tail held back and sent on a
  later chunk (at the latest the last one, which carries ``finish_reason``).
* ``before_toolcall`` / ``after_toolcall``: tool policy, arguments and results.
* ``before_handoff``: where a conversation may go, and what leaves with it.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Literal

import msgspec

from robutler_specs import (
    AgentSpec,
    ChatCompletionChunk,
    ContentBlocked,
    Forbidden,
    LLMCall,
    LLMResult,
    Message,
    RequestContext,
    Skill,
    ToolInvocation,
    ToolResult,
    hookimpl,
    tool,
)

from .audit import Event, record
from .config import GuardrailsConfig
from .detectors import StreamRedactor
from .rules import Finding, Rules, map_text

log = logging.getLogger("robutler.guardrails")


class State:
    """What the skill keeps for one request (``ctx.state["guardrails"]``)."""

    __slots__ = ("events", "queued", "redacted", "stream")

    def __init__(self) -> None:
        #: Every decision of this request (rule, action, where, count: never the text).
        self.events: list[Event] = []
        self.stream: StreamRedactor | None = None
        #: Redacted text of an ended round, sent with the next chunk.
        self.queued = ""
        #: ``id``s of the answers ``after_llm_call`` redacted (not to be redacted twice: a
        #: replacement next to other text can complete a match, ``[EMAIL]+1 415...``).
        self.redacted: set[int] = set()


class GuardrailsSkill(Skill):
    """Input, output, tool and handoff policy; PII and secret redaction, exact on streams."""

    name = "guardrails"
    priority = 8
    Config = GuardrailsConfig
    description = "Input and output policy, PII redaction (exact on streams), tool and handoff policy"

    def __init__(self, config: GuardrailsConfig, agent: AgentSpec) -> None:
        super().__init__(config, agent)
        where = f"agents.{agent.name}.skills.{self.name}"
        self.rules = Rules(config, where, agent.handoff_targets)
        self._input_roles = frozenset(config.input_roles)
        if config.pii.hash_key:
            # Keep the key out of the agent's config as other skills and `GET /{agent}` see it.
            raw = agent.skills.get(self.name)
            if isinstance(raw, dict) and isinstance(raw.get("pii"), dict):
                agent.skills[self.name] = {**raw, "pii": {**raw["pii"], "hash_key": "***"}}
            self.config = msgspec.structs.replace(config, pii=msgspec.structs.replace(config.pii, hash_key="***"))

    # -- helpers -----------------------------------------------------------------------------

    def _state(self, ctx: RequestContext) -> State:
        state = ctx.state.get(self.name)
        if state is None:
            state = ctx.state[self.name] = State()
        return state

    def _record(self, ctx: RequestContext | None, findings: list[Finding], where: str) -> Finding | None:
        """Record ``findings``; the first that blocks, if any."""
        blocking = None
        for f in findings:
            record(ctx, self.agent.name, f.rule, f.action, where, f.count)
            if f.action == "block" and blocking is None:
                blocking = f
        return blocking

    def _blocked(self, rule: str, where: str) -> ContentBlocked:
        return ContentBlocked(
            f"the request was blocked by the guardrails of agent {self.agent.name!r}: rule {rule!r} matched "
            f"{where}; remove what the rule is about and try again, or ask the agent's operator",
            code="content_blocked",
            param=where if where.startswith("messages") else None,
        )

    def _redact_counted(self, ctx: RequestContext, text: str, where: str) -> str:
        counts: Counter[str] = Counter()
        out = self.rules.redact(text, counts)
        for kind, n in sorted(counts.items()):
            record(ctx, self.agent.name, f"pii.{kind}", "redact", where, n)
        return out

    def _redact_message(self, ctx: RequestContext, message: Message, where: str) -> Message:
        redacted = map_text(message, lambda text: self._redact_counted(ctx, text, where))
        if message.tool_calls and self.config.pii.tool_arguments:
            calls = [
                msgspec.structs.replace(
                    c, function=msgspec.structs.replace(c.function, arguments=new)
                ) if (new := self._redact_counted(ctx, c.function.arguments, "tool_arguments")) != c.function.arguments else c
                for c in message.tool_calls
            ]
            if any(a is not b for a, b in zip(calls, message.tool_calls, strict=True)):
                redacted = msgspec.structs.replace(redacted, tool_calls=calls)
        return redacted

    # -- input -------------------------------------------------------------------------------

    @hookimpl
    def on_connection(self, ctx: RequestContext) -> None:
        """Check and clean the client's messages before anything else uses them."""
        self._state(ctx)
        config = self.config
        messages = ctx.messages
        if not messages:
            return
        limit = config.max_input_chars
        if limit is not None:
            size = sum(len(m.text()) for m in messages)
            if size > limit:
                record(ctx, self.agent.name, "max_input_chars", "block", "input")
                raise ContentBlocked(
                    f"the request was blocked by the guardrails of agent {self.agent.name!r}: its messages hold "
                    f"{size} characters, more than the {limit} allowed (max_input_chars); send less",
                    code="content_blocked",
                )
        pii = config.pii.input
        blocking: tuple[str, str] | None = None
        for i, message in enumerate(messages):
            if message.role not in self._input_roles:
                continue
            where = f"messages[{i}]"
            found: list[Finding] = []

            def inspect(text: str, found: list[Finding] = found) -> str:
                out, findings = self.rules.inspect(text, pii=pii)
                found.extend(findings)
                return out

            cleaned = map_text(message, inspect)
            first = self._record(ctx, found, "input")
            if first is not None and blocking is None:
                blocking = (first.rule, where)
            if cleaned is not message:
                messages[i] = cleaned
        if blocking is not None:
            raise self._blocked(*blocking)

    # -- tools offered -----------------------------------------------------------------------

    @hookimpl
    def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
        """Keep denied tools and refused handoffs away from the model."""
        rules = self.rules
        if rules.hides_any:
            call.tools[:] = [t for t in call.tools if not rules.hides(t.function.name)]

    # -- output ------------------------------------------------------------------------------

    @hookimpl
    def after_llm_call(self, ctx: RequestContext, call: LLMCall, result: LLMResult) -> None:
        """Redact each answer whole: what the JSON client gets, memory stores and
        ``on_message`` sees. On a stream, end the round's text (the next round's is
        redacted on its own, as its whole message is)."""
        if not self.config.pii.output:
            return
        result.message = self._redact_message(ctx, result.message, "output")
        state = self._state(ctx)
        state.redacted.add(id(result.message))
        if call.stream and state.stream is not None:
            state.queued += state.stream.flush()

    @hookimpl
    def on_message(self, ctx: RequestContext, message: Message) -> Message | None:
        """The final answer, redacted (a handoff's answer did not pass ``after_llm_call``)."""
        if message.role != "assistant" or not self.config.pii.output:
            return None
        if id(message) in self._state(ctx).redacted:
            return None
        redacted = self._redact_message(ctx, message, "output")
        return None if redacted is message else redacted

    @hookimpl
    def on_chunk(self, ctx: RequestContext, chunk: ChatCompletionChunk) -> ChatCompletionChunk | None:
        """Redact the stream exactly: let through what is decided, hold back the rest."""
        if not self.config.pii.output or not chunk.choices:
            return None
        choice = chunk.choices[0]
        delta = choice.delta
        text = delta.content
        last = choice.finish_reason is not None
        state = self._state(ctx)
        if not text and not last and not state.queued:
            return None
        stream = state.stream
        if stream is None:
            stream = state.stream = self.rules.redactor.stream()
        out = stream.feed(text or "")
        if last:
            out += stream.flush()
        if state.queued:
            out, state.queued = state.queued + out, ""
        if out == (text or ""):
            return None
        new_delta = msgspec.structs.replace(delta, content=out)
        return msgspec.structs.replace(chunk, choices=[msgspec.structs.replace(choice, delta=new_delta)])

    # -- tools -------------------------------------------------------------------------------

    def _refuse(self, ctx: RequestContext, rule: str, where: str, reason: str) -> ToolResult:
        record(ctx, self.agent.name, rule, "block", where)
        return ToolResult(content=f"Error: refused by the agent's guardrails: {reason}.", is_error=True, plugin=self.name)

    @hookimpl
    def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> ToolResult | None:
        """Refuse denied tools and calls to agents the policy does not allow; redact the
        arguments."""
        rules = self.rules
        policy = self.config.policy
        if rules.hides(call.name):
            return self._refuse(ctx, "deny_tools", "tool_policy", f"the tool {call.name!r} may not be used here")
        argument = policy.agent_call_tools.get(call.name)
        if argument is not None:
            try:
                args = msgspec.json.decode(call.arguments)
            except msgspec.DecodeError:
                args = None
            target = args.get(argument) if isinstance(args, dict) else None
            if isinstance(target, str):
                reason = rules.target_refusal(target)
                if reason is not None:
                    rule = "allow_domains" if target.startswith(("http://", "https://")) else "allow_agents"
                    return self._refuse(ctx, rule, "agent_call", reason)
        pii = self.config.pii
        if pii.tool_arguments or (argument is not None and pii.handoffs):
            where = "agent_call" if argument is not None else "tool_arguments"
            call.arguments = self._redact_counted(ctx, call.arguments, where)
        return None

    @hookimpl
    def after_toolcall(self, ctx: RequestContext, call: ToolInvocation, result: ToolResult) -> ToolResult | None:
        """Check what a tool returned (indirect injection) and redact it."""
        content = result.content
        config = self.config
        if config.check_tool_results:
            content, findings = self.rules.inspect(content, pii=False)
            blocking = self._record(ctx, findings, "tool_result")
            if blocking is not None:
                return ToolResult(
                    content=f"Error: the result of {call.name!r} was withheld by the agent's guardrails "
                    f"(rule {blocking.rule!r}).",
                    is_error=True,
                    plugin=self.name,
                )
        if config.pii.tool_results:
            content = self._redact_counted(ctx, content, "tool_result")
        if content == result.content:
            return None
        return msgspec.structs.replace(result, content=content)

    # -- handoffs ----------------------------------------------------------------------------

    @hookimpl
    def before_handoff(self, ctx: RequestContext, handoff: ToolInvocation) -> None:
        """Refuse a handoff the policy does not allow (the model reads why); redact what
        leaves with the others."""
        reason = self.rules.denied_handoffs.get(handoff.name)
        if reason is not None:
            target = self.rules.handoffs[handoff.name].agent
            rule = "allow_domains" if target.startswith(("http://", "https://")) else "allow_agents"
            record(ctx, self.agent.name, rule, "block", "handoff")
            raise Forbidden(f"refused by the agent's guardrails: {reason}", code="handoff_denied")
        if self.config.pii.handoffs and handoff.messages:
            handoff.messages[:] = [
                map_text(m, lambda text: self._redact_counted(ctx, text, "handoff")) for m in handoff.messages
            ]

    # -- tools for callers -------------------------------------------------------------------

    def tools(self) -> list[Any]:
        """The skill's tools, unless ``offer_tools`` is off."""
        return super().tools() if self.config.offer_tools else []

    @tool
    def analyze_content_safety(self, text: str) -> dict[str, Any]:
        """Check a text against this agent's guardrails without sending it anywhere: which
        kinds of personal data or secrets it holds (counts only), prompt-injection signals,
        which configured rules match, and whether the agent would refuse it as input.

        Args:
            text: the text to check
        """
        rules = self.rules
        limit = self.config.max_input_chars
        _, findings = rules.inspect(text)
        pii = {f.rule.removeprefix("pii."): f.count for f in findings if f.rule.startswith("pii.")}
        score, signals = rules.injection.score(text) if rules.injection is not None else (0.0, [])
        too_long = limit is not None and len(text) > limit
        blocked = sorted({f.rule for f in findings if f.action == "block"} | ({"max_input_chars"} if too_long else set()))
        return {
            "safe": not findings and not too_long,
            "would_block": bool(blocked),
            "blocking_rules": blocked,
            "pii": pii,
            "injection": {"score": score, "threshold": self.config.injection.threshold, "signals": signals},
            "matched_rules": sorted({f.rule for f in findings if not f.rule.startswith("pii.")}),
        }

    @tool(scope="admin")
    def list_guardrail_rules(self) -> dict[str, Any]:
        """List this agent's guardrail rules: patterns and their actions, injection and PII
        settings, tool and handoff policy, and any changes made since start-up."""
        return self.rules.describe()

    @tool(scope="admin")
    def set_guardrail_rule(
        self, rule: str, action: Literal["block", "redact", "flag", "off"], ctx: RequestContext
    ) -> str:
        """Change what one of this agent's guardrail rules does, until the server restarts.

        Args:
            rule: the rule: a configured pattern's name, "injection" or "pii"
            action: block, redact, flag, or off
        """
        names = self.rules.names()
        if rule not in names:
            raise ValueError(f"there is no rule {rule!r}; the rules are {', '.join(names)}")
        if rule == "pii" and action == "off":
            log.warning("guardrails: PII redaction switched off for agent %s", self.agent.name)
        self.rules.overrides[rule] = action
        who = ctx.identity.user_id or "anonymous"
        log.warning("guardrails: agent=%s request=%s rule=%s set to %s by %s",
                    self.agent.name, ctx.request_id, rule, action, who)
        return f"rule {rule!r} of agent {self.agent.name!r} is now {action} (until the server restarts)"

    def describe(self) -> dict[str, Any]:
        """Public facts for ``GET /{agent}``: what is checked, not how."""
        config = self.config
        return {
            "max_input_chars": config.max_input_chars,
            "pii_redacted": list(config.pii.detect),
            "pii_replacement": config.pii.replacement,
        }


__all__ = ["GuardrailsSkill", "State"]

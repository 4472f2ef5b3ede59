"""The scripted model skill: replays scripts, or follows the rules of :mod:`.rules`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from robutler_specs import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    LLMCall,
    LLMResult,
    Message,
    ProviderError,
    RequestContext,
    Skill,
    ToolCall,
    ToolCallDelta,
    Usage,
    hookimpl,
)

from . import rules


class ScriptedToolCall(msgspec.Struct, forbid_unknown_fields=True):
    """A tool call a scripted turn makes."""

    name: str
    arguments: dict[str, Any] = {}


class Turn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One scripted assistant turn: text, tool calls, or both; or an upstream error."""

    content: str | None = None
    tool_calls: list[ScriptedToolCall] = []
    finish_reason: str | None = None
    error: str | None = None


class Script(msgspec.Struct, forbid_unknown_fields=True):
    """A script: its turns, and whether to start over after the last one."""

    turns: list[Turn]
    repeat: bool = False


class ScriptedConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Config of the scripted skill.

    :ivar scripts: name to a list of turns (or ``{turns: [...], repeat: true}``);
        ``model: scripted/<name>`` replays it.
    :ivar chunk_delay: seconds to wait between streamed chunks (for tests of slow streams).
    """

    scripts: dict[str, list[Turn] | Script] = {}
    chunk_delay: float = 0.0


_PIECES = re.compile(r"\S+\s*|\s+")


def _words(text: str) -> int:
    return len(text.split())


class ScriptedSkill(Skill):
    """An offline, deterministic model for tests and the quick start (not a language model).

    The turn a script plays is the number of assistant messages already in the
    conversation, so the same conversation always gets the same answer, across
    requests and replicas. Past the last turn it follows the fixed rules, or starts
    over when the script says ``repeat: true``.
    """

    name = "scripted"
    provider = "scripted"
    description = "Offline deterministic model: replays scripts or echoes (not a language model)"
    Config = ScriptedConfig

    def _script(self, name: str) -> Script | None:
        script = self.config.scripts.get(name)
        if isinstance(script, list):
            return Script(turns=script)
        return script

    def answer(self, call: LLMCall) -> tuple[Message, str]:
        """The assistant message and finish reason for ``call``."""
        messages = call.messages
        turn_index = sum(1 for m in messages if m.role == "assistant")
        script = self._script(call.model_name)
        if script is not None and script.turns:
            if turn_index < len(script.turns) or script.repeat:
                turn = script.turns[turn_index % len(script.turns)]
                if turn.error:
                    raise ProviderError(turn.error, plugin=self.name)
                calls = [
                    ToolCall(
                        id=f"call_{turn_index}_{i}",
                        function=FunctionCall(name=c.name, arguments=json.dumps(c.arguments)),
                    )
                    for i, c in enumerate(turn.tool_calls)
                ]
                finish = turn.finish_reason or ("tool_calls" if calls else "stop")
                return Message(role="assistant", content=turn.content, tool_calls=calls or None), finish
        reply = rules.tool_results_reply(messages)
        if reply is None:
            last_user = next((m for m in reversed(messages) if m.role == "user"), None)
            offered = {t.function.name for t in call.tools}
            wanted = rules.tool_request(last_user.text(), offered) if last_user else None
            if wanted is not None and messages[-1] is last_user:
                tool_call = ToolCall(
                    id=f"call_{turn_index}_0",
                    function=FunctionCall(name=wanted[0], arguments=json.dumps(wanted[1])),
                )
                return Message(role="assistant", tool_calls=[tool_call]), "tool_calls"
            reply = rules.echo(messages)
        return self._limit(Message(role="assistant", content=reply), call)

    @staticmethod
    def _limit(message: Message, call: LLMCall) -> tuple[Message, str]:
        text = message.text()
        stop = call.params.get("stop")
        for s in [stop] if isinstance(stop, str) else stop or []:
            if s and s in text:
                text = text[: text.index(s)]
        finish = "stop"
        limit = call.params.get("max_completion_tokens") or call.params.get("max_tokens")
        if limit is not None and _words(text) > limit:
            text = "".join(_PIECES.findall(text)[:limit]).rstrip()
            finish = "length"
        return Message(role="assistant", content=text), finish

    @staticmethod
    def usage(call: LLMCall, message: Message) -> Usage:
        """Deterministic usage: one token per whitespace-separated word."""
        prompt = sum(_words(m.text()) for m in call.messages) + len(call.messages)
        completion = _words(message.text()) + sum(
            1 + _words(c.function.arguments) for c in message.tool_calls or ()
        )
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    @hookimpl
    def llm_complete(self, ctx: RequestContext, call: LLMCall) -> LLMResult | None:
        """Answer at once (non-streamed)."""
        if call.provider != self.provider:
            return None
        message, finish = self.answer(call)
        return LLMResult(message=message, finish_reason=finish, usage=self.usage(call, message), model=call.model_name)

    @hookimpl
    def llm_stream(self, ctx: RequestContext, call: LLMCall) -> AsyncIterator[ChatCompletionChunk] | None:
        """Answer as chunks: one per word, tool calls in two argument fragments."""
        if call.provider != self.provider:
            return None
        message, finish = self.answer(call)
        return self._chunks(call, message, finish)

    async def _chunks(
        self, call: LLMCall, message: Message, finish: str
    ) -> AsyncIterator[ChatCompletionChunk]:
        def chunk(delta: Delta, finish_reason: str | None = None, usage: Usage | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id="scripted", created=0, model=call.model_name,
                choices=[ChunkChoice(0, delta, finish_reason)], usage=usage,
            )

        delay = self.config.chunk_delay
        for piece in _PIECES.findall(message.text()):
            if delay:
                await asyncio.sleep(delay)
            yield chunk(Delta(content=piece))
        for index, tc in enumerate(message.tool_calls or ()):
            half = len(tc.function.arguments) // 2
            yield chunk(Delta(tool_calls=[ToolCallDelta(
                index=index, id=tc.id, type="function",
                function=FunctionCallDelta(name=tc.function.name, arguments=tc.function.arguments[:half]),
            )]))
            yield chunk(Delta(tool_calls=[ToolCallDelta(
                index=index, function=FunctionCallDelta(arguments=tc.function.arguments[half:]),
            )]))
        yield chunk(Delta(), finish, self.usage(call, message))

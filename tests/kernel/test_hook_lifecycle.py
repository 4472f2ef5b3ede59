"""One test per hook (``test_hook_<name>``): each hook is called when documented, with what
is documented, and what it returns has the documented effect."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import HookRecorder, kernel_client, make_kernel
from robutler_specs import (
    AgentSpec,
    ChatCompletionChunk,
    ChunkChoice,
    ContentBlocked,
    Delta,
    HttpRoute,
    LLMCall,
    LLMResult,
    Message,
    RequestContext,
    Skill,
    ToolInvocation,
    ToolResult,
    Unauthorized,
    handoff,
    hookimpl,
    tool,
)


def plugin_module(**hooks: Any) -> types.ModuleType:
    module = types.ModuleType("test_plugin_module")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def scripted_agent(script: list[dict[str, Any]] | None = None, **skills: Any) -> dict[str, Any]:
    config = {"scripts": {"s": script}} if script else None
    return {"model": "scripted/s" if script else "scripted/echo", "skills": {**skills, "scripted": config}}


async def ask(kernel: Any, text: str = "hi", agent: str = "bot", **kw: Any) -> Any:
    await kernel.startup()
    return await kernel.agent(agent).run([{"role": "user", "content": text}], **kw)


async def stream_text(kernel: Any, text: str = "hi") -> list[ChatCompletionChunk]:
    await kernel.startup()
    return [c async for c in kernel.agent("bot").run_streaming([{"role": "user", "content": text}])]


# -- request stage ---------------------------------------------------------------------


async def test_hook_on_connection() -> None:
    class Gate(Skill):
        name = "gate"

        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            if ctx.headers.get("x-key") != "open sesame":
                raise Unauthorized("bad key")

    kernel = make_kernel({"bot": scripted_agent(gate=None)}, plugins=[scripted, Gate])
    await kernel.startup()
    agent = kernel.agent("bot")
    with pytest.raises(Unauthorized) as caught:
        await agent.complete(agent.context([{"role": "user", "content": "hi"}]))
    assert caught.value.plugin == "gate"
    ok = await agent.complete(agent.context([{"role": "user", "content": "hi"}], headers={"x-key": "open sesame"}))
    assert ok.choices[0].message.content == "You said: hi"


async def test_hook_build_prompt() -> None:
    systems: list[str] = []

    class Fragments(Skill):
        name = "fragments"

        @hookimpl
        def build_prompt(self, ctx: RequestContext) -> str | None:
            return f"The caller is {ctx.headers.get('x-user', 'unknown')}."

        @hookimpl
        def before_llm_call(self, call: LLMCall) -> None:
            systems.append(call.messages[0].text())

    class Silent(Skill):
        name = "silent"

        @hookimpl
        async def build_prompt(self) -> None:
            return None

    kernel = make_kernel(
        {"bot": {**scripted_agent(fragments=None, silent=None), "instructions": "Be brief."}},
        plugins=[scripted, Fragments, Silent],
    )
    await ask(kernel)
    assert systems == ["Be brief.\n\nThe caller is unknown."]


async def test_hook_on_message() -> None:
    seen: list[str] = []

    class Redact(Skill):
        name = "redact"

        @hookimpl
        def on_message(self, message: Message) -> Message | None:
            seen.append(message.role)
            if message.role == "user":
                return Message(role="user", content=message.text().replace("secret", "[redacted]"))
            if "forbidden" in message.text():
                raise ContentBlocked("the answer broke policy")
            return None

    kernel = make_kernel({"bot": scripted_agent(redact=None)}, plugins=[scripted, Redact])
    result = await ask(kernel, "my secret plan")
    assert result.choices[0].message.content == "You said: my [redacted] plan"
    assert seen == ["user", "assistant"]
    with pytest.raises(ContentBlocked):
        await ask(kernel, "forbidden words")


# -- LLM stage -------------------------------------------------------------------------


async def test_hook_before_llm_call() -> None:
    class Rewrite(Skill):
        name = "rewrite"

        @hookimpl
        def before_llm_call(self, ctx: RequestContext, call: LLMCall) -> None:
            call.messages[-1] = Message(role="user", content="rewritten")
            call.params["max_tokens"] = 2

    kernel = make_kernel({"bot": scripted_agent(rewrite=None)}, plugins=[scripted, Rewrite])
    result = await ask(kernel, "original text here")
    assert result.choices[0].message.content == "You said:"
    assert result.choices[0].finish_reason == "length"


class Canned(Skill):
    """A provider for model prefix ``canned``: async impls of both LLM hooks."""

    name = "canned"
    provider = "canned"

    @hookimpl
    async def llm_complete(self, call: LLMCall) -> LLMResult | None:
        if call.provider != "canned":
            return None
        return LLMResult(message=Message(role="assistant", content=f"canned {call.model_name}"))

    @hookimpl
    async def llm_stream(self, call: LLMCall) -> AsyncIterator[ChatCompletionChunk] | None:
        if call.provider != "canned":
            return None

        async def chunks() -> AsyncIterator[ChatCompletionChunk]:
            for piece in ("can", "ned"):
                yield ChatCompletionChunk(id="x", created=0, model="m", choices=[ChunkChoice(0, Delta(content=piece))])
            yield ChatCompletionChunk(id="x", created=0, model="m", choices=[ChunkChoice(0, Delta(), "stop")])

        return chunks()


async def test_hook_llm_complete() -> None:
    # Two providers on one agent: the model prefix picks the one that answers; an async
    # provider that returns None is skipped (firstresult applied after awaiting).
    kernel = make_kernel({"bot": {"model": "canned/v1", "skills": {"scripted": None, "canned": None}}}, plugins=[scripted, Canned])
    result = await ask(kernel)
    assert result.choices[0].message.content == "canned v1"
    # The provider reported no usage: the kernel estimates it and says so.
    assert result.usage.estimated is True and result.usage.prompt_tokens > 0
    kernel = make_kernel({"bot": {"model": "scripted/echo", "skills": {"canned": None, "scripted": None}}}, plugins=[scripted, Canned])
    assert (await ask(kernel)).choices[0].message.content == "You said: hi"


async def test_hook_llm_stream() -> None:
    kernel = make_kernel({"bot": {"model": "canned/v1", "skills": {"canned": None}}}, plugins=[scripted, Canned])
    chunks = await stream_text(kernel)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "canned"
    assert all(c.model == "bot" and c.id.startswith("chatcmpl-") for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.estimated is True


async def test_hook_after_llm_call() -> None:
    results: list[tuple[int, str | None]] = []

    class Meter(Skill):
        name = "meter"

        @hookimpl
        def after_llm_call(self, call: LLMCall, result: LLMResult) -> None:
            results.append((call.round, result.finish_reason))

    kernel = make_kernel(
        {"bot": {**scripted_agent([{"tool_calls": [{"name": "noop"}]}], meter=None), "tools": ["tests.kernel.test_hook_lifecycle:noop"]}},
        plugins=[scripted, Meter],
    )
    await ask(kernel)
    assert results == [(0, "tool_calls"), (1, "stop")]


def noop() -> str:
    """Does nothing."""
    return "ok"


# -- tool stage ------------------------------------------------------------------------


class Tools(Skill):
    name = "tools"

    @tool
    def price(self, item: str) -> str:
        """The price of an item."""
        return f"{item}: 10 credits"

    @handoff(name="escalate", description="Escalate to a human")
    def escalate(self, topic: str) -> str:
        return f"a human will call you about {topic}"


async def test_hook_before_toolcall() -> None:
    class Veto(Skill):
        name = "veto"

        @hookimpl
        def before_toolcall(self, ctx: RequestContext, call: ToolInvocation) -> ToolResult | None:
            if call.tool is not None and "gold" in call.arguments:
                return ToolResult(content="refused: too expensive", is_error=True)
            return None

    script = [{"tool_calls": [{"name": "price", "arguments": {"item": "gold"}}, {"name": "price", "arguments": {"item": "tin"}}]}]
    kernel = make_kernel({"bot": scripted_agent(script, tools=None, veto=None)}, plugins=[scripted, Tools, Veto])
    text = (await ask(kernel)).choices[0].message.content
    assert "Tool price returned: refused: too expensive" in text
    assert "Tool price returned: tin: 10 credits" in text


async def test_hook_after_toolcall() -> None:
    class Audit(Skill):
        name = "audit"

        @hookimpl
        def after_toolcall(self, call: ToolInvocation, result: ToolResult) -> ToolResult:
            return ToolResult(content=f"{result.content} (audited {call.name})", plugin=result.plugin)

    script = [{"tool_calls": [{"name": "price", "arguments": {"item": "tin"}}]}]
    kernel = make_kernel({"bot": scripted_agent(script, tools=None, audit=None)}, plugins=[scripted, Tools, Audit])
    assert (await ask(kernel)).choices[0].message.content == "Tool price returned: tin: 10 credits (audited price)"


async def test_hook_before_handoff() -> None:
    class Filter(Skill):
        name = "filter"

        @hookimpl
        def before_handoff(self, handoff: ToolInvocation) -> ToolResult | None:
            if "password" in handoff.arguments:
                return ToolResult(content="handoff refused: it would leak a password")
            return None

    script = [{"tool_calls": [{"name": "escalate", "arguments": {"topic": "my password"}}]}]
    kernel = make_kernel({"bot": scripted_agent(script, tools=None, filter=None)}, plugins=[scripted, Tools, Filter])
    assert (await ask(kernel)).choices[0].message.content == "handoff refused: it would leak a password"


async def test_hook_after_handoff() -> None:
    audited: list[str] = []

    class Audit(Skill):
        name = "audit"

        @hookimpl
        def after_handoff(self, handoff: ToolInvocation, result: ToolResult) -> None:
            audited.append(f"{handoff.name}: {result.content}")

    script = [{"tool_calls": [{"name": "escalate", "arguments": {"topic": "billing"}}]}]
    kernel = make_kernel({"bot": scripted_agent(script, tools=None, audit=None)}, plugins=[scripted, Tools, Audit])
    result = await ask(kernel)
    assert result.choices[0].message.content == "a human will call you about billing"
    assert audited == ["escalate: a human will call you about billing"]


# -- response stage --------------------------------------------------------------------


async def test_hook_on_chunk() -> None:
    class Shout(Skill):
        name = "shout"

        @hookimpl
        def on_chunk(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk | None:
            for choice in chunk.choices:
                if choice.delta.content:
                    choice.delta.content = choice.delta.content.upper()
            return chunk

    kernel = make_kernel({"bot": scripted_agent(shout=None)}, plugins=[scripted, Shout])
    chunks = await stream_text(kernel, "quiet please")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "YOU SAID: QUIET PLEASE"


async def test_hook_finalize_connection() -> None:
    outcomes: list[str] = []

    class Settle(Skill):
        name = "settle"

        @hookimpl
        def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
            outcomes.append(type(error).__name__ if error else "ok")
            raise RuntimeError("a broken finalizer must not hide the others")

    class Second(Skill):
        name = "second"
        priority = 90

        @hookimpl
        async def finalize_connection(self, error: BaseException | None) -> None:
            outcomes.append("second ran")

    class Refuse(Skill):
        name = "refuse"

        @hookimpl
        def on_connection(self, ctx: RequestContext) -> None:
            if ctx.user_message and ctx.user_message.text() == "refuse":
                raise Unauthorized("no")

    kernel = make_kernel({"bot": scripted_agent(settle=None, second=None, refuse=None)}, plugins=[scripted, Settle, Second, Refuse])
    await ask(kernel)
    with pytest.raises(Unauthorized):
        await ask(kernel, "refuse")
    chunks = kernel.agent("bot").run_streaming([{"role": "user", "content": "a b c d"}])
    await chunks.__anext__()
    await chunks.aclose()  # the client went away mid-stream
    assert outcomes == ["ok", "second ran", "Unauthorized", "second ran", "CancelledError", "second ran"]


async def test_hook_order_follows_priority_and_the_lifecycle() -> None:
    recorder = HookRecorder()
    kernel = make_kernel({"bot": scripted_agent()}, plugins=[scripted], recorder=recorder)
    await ask(kernel)
    assert recorder.names() == [
        "on_connection", "on_message", "build_prompt", "before_llm_call", "llm_complete",
        "after_llm_call", "on_message", "finalize_connection",
    ]


# -- kernel hooks ----------------------------------------------------------------------


async def test_hook_robutler_skills() -> None:
    class Greeter(Skill):
        name = "greeter"

        @tool
        def greet(self, who: str) -> str:
            """Greet someone."""
            return f"hello {who}"

    module = plugin_module(robutler_skills=lambda: [Greeter])
    kernel = make_kernel({"bot": scripted_agent(greeter=None)}, plugins=[scripted, module])
    assert (await ask(kernel, "call greet who=Ada")).choices[0].message.content == "Tool greet returned: hello Ada"


async def test_hook_robutler_startup() -> None:
    events: list[str] = []

    async def startup(kernel: Any) -> None:
        kernel.state["pool"] = "open"
        events.append(f"startup {sorted(kernel.agents)}")

    def shutdown(kernel: Any) -> None:
        events.append(f"shutdown {kernel.state['pool']}")

    kernel = make_kernel({"bot": scripted_agent()}, plugins=[scripted, plugin_module(robutler_startup=startup, robutler_shutdown=shutdown)])
    async with kernel.lifespan():
        assert events == ["startup ['bot']"]
    assert events == ["startup ['bot']", "shutdown open"]


async def test_hook_robutler_shutdown() -> None:
    stopped: list[str] = []

    class Pool(Skill):
        name = "pool"

        async def stop(self) -> None:
            stopped.append(f"skill {self.agent.name}")

    kernel = make_kernel(
        {"a": scripted_agent(pool=None), "b": scripted_agent(pool=None)},
        plugins=[scripted, Pool, plugin_module(robutler_shutdown=lambda kernel: stopped.append("kernel"))],
    )
    async with kernel.lifespan():
        pass
    assert stopped == ["skill a", "skill b", "kernel"]


async def test_hook_robutler_resolve_agent() -> None:
    def resolve(name: str) -> AgentSpec | None:
        if name.startswith("dyn-"):
            return AgentSpec(name=name, model="scripted/echo", description="made on demand")
        return None

    kernel = make_kernel({"bot": scripted_agent()}, plugins=[scripted, plugin_module(robutler_resolve_agent=resolve)])
    await kernel.startup()
    agent = await kernel.get_agent("dyn-42")
    assert agent is not None and agent.spec.description == "made on demand"
    assert await kernel.get_agent("dyn-42") is agent  # resolved once, then cached
    assert await kernel.get_agent("other") is None
    result = await agent.run([{"role": "user", "content": "hi"}])
    assert result.model == "dyn-42"


async def test_hook_robutler_health_checks() -> None:
    async def database() -> dict[str, int]:
        return {"connections": 3}

    async def cache() -> None:
        raise ConnectionError("cache is down")

    module = plugin_module(robutler_health_checks=lambda: {"database": database, "cache": cache})
    kernel = make_kernel({"bot": scripted_agent()}, plugins=[scripted, module])
    async with kernel_client(kernel) as client:
        detailed = await client.get("/health/detailed")
        ready = await client.get("/ready")
    assert detailed.status_code == 503
    checks = detailed.json()["checks"]
    assert checks["database"]["status"] == "healthy" and checks["database"]["detail"] == {"connections": 3}
    assert checks["cache"] == {"status": "unhealthy", "error": "ConnectionError: cache is down"}
    assert ready.status_code == 503 and ready.json()["failing"] == ["cache"]


async def test_hook_robutler_routes() -> None:
    async def echo(request: Any) -> dict[str, Any]:
        return {"method": request.method, "name": request.query["name"], "body": request.json()}

    module = plugin_module(robutler_routes=lambda: [HttpRoute("/plugin/echo/{name}", echo, methods=("POST",))])
    kernel = make_kernel({"bot": scripted_agent()}, plugins=[scripted, module])
    async with kernel_client(kernel) as client:
        response = await client.post("/plugin/echo/ada", json={"x": 1})
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "name": "ada", "body": {"x": 1}}


async def test_hook_robutler_embed() -> None:
    def embed(texts: list[str], model: str | None) -> list[list[float]] | None:
        if model not in (None, "toy/len"):
            return None
        return [[float(len(t))] for t in texts]

    kernel = make_kernel({"bot": scripted_agent()}, plugins=[scripted, plugin_module(robutler_embed=embed)])
    assert await kernel.embed(["ab", "abcd"]) == [[2.0], [4.0]]
    assert await kernel.embed(["ab"], model="other/x") is None


def test_hook_robutler_commands(tmp_path: Any, capsys: Any) -> None:
    from robutler_kernel.cli import plugin_commands, run_plugin_command
    from robutler_kernel.plugins import PluginRegistry

    def greet(argv: list[str], settings: dict[str, Any]) -> int:
        print(f"{settings.get('greeting', 'hello')} {' '.join(argv)}")
        return 3

    registry = PluginRegistry()
    registry.add(plugin_module(robutler_commands=lambda: {"greet": greet, "serve": greet}), name="greeter")
    commands = plugin_commands(registry)
    assert set(commands) == {"greet"}  # a plugin cannot shadow a built-in command
    config = tmp_path / "robutler.yaml"
    config.write_text("plugins:\n  greeter: {greeting: hi}\nagents: {}\n")
    plugin, fn = commands["greet"]
    assert run_plugin_command(plugin, fn, ["--config", str(config), "ada", "lovelace"]) == 3
    assert capsys.readouterr().out == "hi ada lovelace\n"

"""Dynamic agents: the files of ``agents_dir`` and ``robutler_resolve_agent`` answers, loaded
on first request, reloaded when their source changes, removed when it is gone."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import re
import threading
import time
import types
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from ruamel.yaml import YAML

import robutler_plugin_scripted as scripted
from robutler_kernel import Kernel
from robutler_kernel.check import check_file
from robutler_kernel.config import config_from_dict, load_config, parse_agent_file
from robutler_kernel.testing import LiveServer, kernel_client
from robutler_specs import AgentSpec, ConfigError, RequestContext, Skill, hookimpl
from robutler_specs.errors import AgentConfigError


class CountingConfig(msgspec.Struct, forbid_unknown_fields=True):
    tag: str = ""


class Counting(Skill):
    """Counts builds, starts and stops of its instances; a request with ``x-slow: <s>``
    waits that long in ``on_connection`` (a request in flight)."""

    name = "counting"
    Config = CountingConfig
    built: ClassVar[list[str]] = []
    started: ClassVar[list[str]] = []
    stopped: ClassVar[list[str]] = []
    #: The builds (tags) slow requests are waiting in.
    waiting: ClassVar[list[str]] = []

    def __init__(self, config: Any, agent: AgentSpec) -> None:
        super().__init__(config, agent)
        type(self).built.append(config.tag)

    async def start(self) -> None:
        type(self).started.append(self.config.tag)

    async def stop(self) -> None:
        type(self).stopped.append(self.config.tag)

    @hookimpl
    async def on_connection(self, ctx: RequestContext) -> None:
        if "x-slow" in ctx.headers:
            type(self).waiting.append(self.config.tag)
            await asyncio.sleep(float(ctx.headers["x-slow"]))


@pytest.fixture(autouse=True)
def _reset_counting() -> None:
    Counting.built, Counting.started, Counting.stopped, Counting.waiting = [], [], [], []


def agent_yaml(answer: str, *, tag: str = "", extra: str = "") -> str:
    """An agent file whose scripted model answers ``answer``."""
    return (
        f"description: answers {answer}\n"
        "model: scripted/s\n"
        "skills:\n"
        f"  counting: {{tag: {tag or answer}}}\n"
        f"  scripted: {{scripts: {{s: [{{content: {answer}}}]}}}}\n" + extra
    )


def write(path: Path, text: str) -> None:
    """Write ``text`` so that the kernel sees a change even within one mtime tick."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a new inode, as editors and Kubernetes do


def dynamic_kernel(folder: Path, agents: dict[str, Any] | None = None, plugins: list[Any] | None = None, **server: Any) -> Kernel:
    folder.mkdir(exist_ok=True)
    config = config_from_dict(
        {
            "server": {"metrics_port": None, **server},
            "agents": agents if agents is not None else {"bot": {"model": "scripted/echo"}},
            "agents_dir": str(folder),
        }
    )
    kernel = Kernel(config, plugins=[scripted, Counting, *(plugins or [])], discover=False)
    kernel.dynamic.refresh = 0.0  # look at the files on every request (the throttle has its own test)
    return kernel


def gauge() -> float:
    return REGISTRY.get_sample_value("robutler_dynamic_agents_active") or 0.0


async def chat(client: Any, agent: str, text: str = "hi", **headers: str) -> Any:
    return await client.post(f"/{agent}/chat/completions", json={"messages": [{"role": "user", "content": text}]}, headers=headers)


def answer(response: Any) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        gc.collect()
        await asyncio.sleep(0.05)


# -- loading, listing, reloading, removing ------------------------------------------------------


async def test_an_agent_file_is_listed_then_loaded_on_its_first_request(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    write(tmp_path / "agents" / "support.yaml", agent_yaml("one"))
    (tmp_path / "agents" / "notes.txt").write_text("not an agent")
    (tmp_path / "agents" / ".hidden.yaml").write_text("model: nope")
    async with kernel_client(kernel) as client:
        models = (await client.get("/v1/models")).json()
        assert [m["id"] for m in models["data"]] == ["bot", "support"]
        assert Counting.built == []  # listed, not loaded
        assert answer(await chat(client, "support")) == "one"
        assert Counting.built == ["one"] and Counting.started == ["one"]
        assert kernel.agent_names == ["bot", "support"] and kernel.agents["support"].description == "answers one"
        reply = await client.post("/v1/chat/completions", json={"model": "support", "messages": [{"role": "user", "content": "x"}]})
        assert answer(reply) == "one"
        info = (await client.get("/agents")).json()["data"]
        assert {a["name"] for a in info} == {"bot", "support"}
        assert (await client.get("/support")).json()["description"] == "answers one"
        assert (await client.get("/hidden")).status_code == 404
    assert Counting.built == ["one"]  # built once for all of it
    assert Counting.stopped == ["one"]  # the kernel's shutdown stops dynamic agents too


async def test_an_unloaded_file_is_loaded_by_the_agents_listing(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    write(tmp_path / "agents" / "support.yaml", agent_yaml("one"))
    write(tmp_path / "agents" / "broken.yaml", "model: nope\n")
    async with kernel_client(kernel) as client:
        data = (await client.get("/agents?search=answers")).json()["data"]
    assert [a["name"] for a in data] == ["support"]


async def test_editing_the_file_reloads_the_agent_and_stops_the_old_skills(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    path = tmp_path / "agents" / "support.yaml"
    write(path, agent_yaml("one"))
    async with kernel_client(kernel) as client:
        assert answer(await chat(client, "support")) == "one"
        write(path, agent_yaml("two"))
        assert answer(await chat(client, "support")) == "two"
        assert Counting.built == ["one", "two"] and Counting.started == ["one", "two"]
        await wait_for(lambda: Counting.stopped == ["one"])
        assert answer(await chat(client, "support")) == "two"
        assert Counting.built == ["one", "two"]  # an unchanged file is not rebuilt
    assert Counting.stopped == ["one", "two"]


async def test_a_file_is_looked_at_at_most_once_per_refresh_interval(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    now = [100.0]
    kernel.dynamic.clock = lambda: now[0]
    kernel.dynamic.refresh = 1.0
    path = tmp_path / "agents" / "support.yaml"
    write(path, agent_yaml("one"))
    async with kernel_client(kernel) as client:
        assert answer(await chat(client, "support")) == "one"
        write(path, agent_yaml("two"))
        now[0] += 0.5
        assert answer(await chat(client, "support")) == "one"  # within the interval: not looked at
        now[0] += 0.6
        assert answer(await chat(client, "support")) == "two"


def _post(url: str, agent: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/{agent}/chat/completions",
        data=json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_reload_while_serving_over_http_in_flight_requests_finish_on_the_old_build(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    path = tmp_path / "agents" / "support.yaml"
    write(path, agent_yaml("one"))
    with LiveServer(kernel) as server:
        assert _post(server.url, "support")[1]["choices"][0]["message"]["content"] == "one"
        slow: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: slow.update(reply=_post(server.url, "support", {"x-slow": "3"})))
        thread.start()
        deadline = time.monotonic() + 5
        while Counting.waiting != ["one"]:  # the slow request holds the first build
            assert time.monotonic() < deadline, Counting.waiting
            time.sleep(0.01)
        write(path, agent_yaml("two"))
        status, body = _post(server.url, "support")
        assert (status, body["choices"][0]["message"]["content"]) == (200, "two")
        assert Counting.stopped == []  # the first build is still in use
        thread.join(10)
        status, body = slow["reply"]
        assert (status, body["choices"][0]["message"]["content"]) == (200, "one")
        deadline = time.monotonic() + 5
        while Counting.stopped != ["one"]:
            assert time.monotonic() < deadline, Counting.stopped
            time.sleep(0.05)
        path.unlink()
        status, body = _post(server.url, "support")
        assert status == 404 and body["error"]["code"] == "agent_not_found"
        status, body = _post(server.url, "bot")
        assert status == 200


async def test_removing_the_file_removes_the_agent(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    path = tmp_path / "agents" / "support.yaml"
    write(path, agent_yaml("one"))
    before = gauge()
    async with kernel_client(kernel) as client:
        assert answer(await chat(client, "support")) == "one"
        assert gauge() == before + 1
        path.unlink()
        reply = await chat(client, "support")
        assert reply.status_code == 404
        assert reply.json()["error"]["message"] == "no agent named 'support' (agents: bot)"
        assert "support" not in kernel.agents and kernel.agent("support") is None
        assert gauge() == before
        assert [m["id"] for m in (await client.get("/v1/models")).json()["data"]] == ["bot"]
        await wait_for(lambda: Counting.stopped == ["one"])
        write(path, agent_yaml("three"))
        assert answer(await chat(client, "support")) == "three"


async def test_the_gauge_counts_loaded_dynamic_agents(tmp_path: Path) -> None:
    def resolve(name: str) -> AgentSpec | None:
        return AgentSpec(name=name, model="scripted/echo") if name.startswith("dyn-") else None

    kernel = dynamic_kernel(tmp_path / "agents", plugins=[plugin_module(robutler_resolve_agent=resolve)])
    write(tmp_path / "agents" / "a.yaml", agent_yaml("a"))
    write(tmp_path / "agents" / "b.yaml", agent_yaml("b"))
    write(tmp_path / "agents" / "broken.yaml", "model: [\n")
    before = gauge()
    async with kernel_client(kernel) as client:
        assert gauge() == before  # nothing loaded yet
        for name in ("a", "b", "dyn-1", "dyn-2", "a"):
            assert (await chat(client, name)).status_code == 200
        assert (await chat(client, "broken")).status_code == 500
        assert (await chat(client, "nobody")).status_code == 404
        assert gauge() == before + 4
        (tmp_path / "agents" / "a.yaml").unlink()
        await chat(client, "a")
        assert gauge() == before + 3
    assert gauge() == before  # shutdown unloads them


# -- errors ---------------------------------------------------------------------------------------


async def test_a_broken_file_is_an_error_of_that_agent_only(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    folder = tmp_path / "agents"
    write(folder / "good.yaml", agent_yaml("fine"))
    write(folder / "broken.yaml", "description: oops\nmodel: gpt-4o\nmax_tool_round: 3\n")
    write(folder / "notyaml.yaml", "model: [unclosed\n")
    write(folder / "noskill.yaml", "model: scripted/echo\nskills:\n  teleport: {}\n")
    async with kernel_client(kernel) as client:
        reply = await chat(client, "broken")
        assert reply.status_code == 500
        error = reply.json()["error"]
        assert error["type"] == "server_error" and error["code"] == "agent_config_error"
        broken = os.path.join(str(folder), "broken.yaml")
        assert error["message"] == (
            f"agent 'broken' cannot be loaded: {broken}:3: max_tool_round: unknown key (did you mean `max_tool_rounds`?)"
        )
        reply = await chat(client, "notyaml")
        assert reply.status_code == 500 and "notyaml.yaml:2: invalid YAML" in reply.json()["error"]["message"]
        reply = await chat(client, "noskill")
        assert reply.status_code == 500
        assert "no installed plugin provides skill 'teleport'" in reply.json()["error"]["message"]
        assert answer(await chat(client, "good")) == "fine"
        assert answer(await chat(client, "bot")) == "You said: hi"
        # Fixed: it serves.
        write(folder / "broken.yaml", agent_yaml("mended"))
        assert answer(await chat(client, "broken")) == "mended"
        # Broken again: the file decides, the good build is retired.
        write(folder / "broken.yaml", "model: gpt-4o\n")
        reply = await chat(client, "broken")
        assert reply.status_code == 500 and f"{broken}:1: model: `gpt-4o` is not `<provider>/<model>`" in reply.text
        await wait_for(lambda: "mended" in Counting.stopped)


async def test_errors_name_the_file_as_the_config_writes_agents_dir(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    write(tmp_path / "agents" / "broken.yaml", "model: gpt-4o\n")
    (tmp_path / "robutler.yaml").write_text("server: {metrics_port: null}\nagents_dir: agents\n")
    kernel = Kernel(load_config(tmp_path / "robutler.yaml"), plugins=[scripted], discover=False)
    assert kernel.dynamic.folder == str(tmp_path / "agents")
    async with kernel_client(kernel) as client:
        reply = await chat(client, "broken")
    assert reply.json()["error"]["message"].startswith("agent 'broken' cannot be loaded: agents/broken.yaml:1: model: ")


async def test_a_skill_that_fails_to_start_is_that_agents_error(tmp_path: Path) -> None:
    class Fragile(Skill):
        name = "fragile"

        async def start(self) -> None:
            raise ConnectionError("database is down")

    kernel = dynamic_kernel(tmp_path / "agents", plugins=[Fragile])
    write(tmp_path / "agents" / "frail.yaml", "model: scripted/echo\nskills: {counting: {tag: f}, fragile: {}}\n")
    async with kernel_client(kernel) as client:
        reply = await chat(client, "frail")
    assert reply.status_code == 500
    assert "skill 'fragile' failed to start: ConnectionError: database is down" in reply.json()["error"]["message"]
    assert Counting.stopped == ["f"]  # what had started is stopped again


async def test_reserved_names_and_the_configs_agents_cannot_be_shadowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "agents"
    kernel = dynamic_kernel(folder)
    write(folder / "health.yaml", agent_yaml("sneaky"))
    write(folder / "Admin.yaml", agent_yaml("sneaky"))
    write(folder / "bot.yaml", agent_yaml("impostor"))
    async with kernel_client(kernel) as client:
        assert "bot.yaml is ignored: agent 'bot' is defined in the config file" in caplog.text
        assert (await client.get("/health")).json()["status"] == "healthy"
        assert answer(await chat(client, "bot")) == "You said: hi"
        reply = await client.post("/v1/chat/completions", json={"model": "Admin", "messages": [{"role": "user", "content": "x"}]})
        assert reply.status_code == 500
        assert "`Admin` is reserved for a kernel route" in reply.json()["error"]["message"]
        assert [m["id"] for m in (await client.get("/v1/models")).json()["data"]] == ["bot"]
    assert Counting.built == []


async def test_a_name_in_the_file_must_be_the_file_name(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    write(tmp_path / "agents" / "support.yaml", "name: other\nmodel: scripted/echo\n")
    write(tmp_path / "agents" / "same.yaml", "name: same\nmodel: scripted/echo\n")
    async with kernel_client(kernel) as client:
        reply = await chat(client, "support")
        assert reply.status_code == 500
        assert "support.yaml:1: name: `other` does not match the file name `support`" in reply.json()["error"]["message"]
        assert (await chat(client, "same")).status_code == 200


async def test_a_missing_agents_dir_stops_the_start(tmp_path: Path) -> None:
    config = config_from_dict({"server": {"metrics_port": None}, "agents_dir": str(tmp_path / "nowhere")})
    kernel = Kernel(config, plugins=[scripted], discover=False)
    with pytest.raises(ConfigError, match=r"agents_dir: .* is not a folder"):
        await kernel.startup()


def test_agents_dir_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match=re.escape("agents_dir: Expected `str | null`, got `int`")):
        config_from_dict({"agents_dir": 3})
    with pytest.raises(ConfigError, match="agents_dir: must not be empty"):
        config_from_dict({"agents_dir": ""})


# -- concurrency ------------------------------------------------------------------------------------


async def test_concurrent_first_requests_build_the_agent_once(tmp_path: Path) -> None:
    kernel = dynamic_kernel(tmp_path / "agents")
    write(tmp_path / "agents" / "support.yaml", agent_yaml("one"))
    async with kernel_client(kernel) as client:
        replies = await asyncio.gather(*(chat(client, "support") for _ in range(50)))
        assert [answer(r) for r in replies] == ["one"] * 50
        assert Counting.built == ["one"] and Counting.started == ["one"]
        write(tmp_path / "agents" / "support.yaml", agent_yaml("two"))
        replies = await asyncio.gather(*(chat(client, "support") for _ in range(50)))
        assert {answer(r) for r in replies} <= {"one", "two"}
        assert Counting.built == ["one", "two"]
    assert not kernel.dynamic._locks._locks  # no lock is left behind


async def test_concurrent_first_requests_of_a_resolved_agent_resolve_and_build_once(tmp_path: Path) -> None:
    asked: list[str] = []

    async def resolve(name: str) -> AgentSpec | None:
        asked.append(name)
        await asyncio.sleep(0.05)
        return AgentSpec(name=name, skills={"counting": {"tag": name}}) if name == "dyn" else None

    kernel = dynamic_kernel(tmp_path / "agents", plugins=[plugin_module(robutler_resolve_agent=resolve)])
    kernel.dynamic.refresh = 60.0
    await kernel.startup()
    agents = await asyncio.gather(*(kernel.get_agent("dyn") for _ in range(20)))
    assert len({id(a) for a in agents}) == 1 and asked == ["dyn"] and Counting.built == ["dyn"]
    await kernel.shutdown()


# -- robutler_resolve_agent -------------------------------------------------------------------------


def plugin_module(**hooks: Any) -> types.ModuleType:
    module = types.ModuleType("resolver_plugin")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


async def test_a_resolved_agent_is_reloaded_when_its_spec_changes_and_removed_on_none(tmp_path: Path) -> None:
    specs: dict[str, AgentSpec] = {"dyn": AgentSpec(model="scripted/echo", description="v1", skills={"counting": {"tag": "v1"}})}
    kernel = dynamic_kernel(tmp_path / "agents", plugins=[plugin_module(robutler_resolve_agent=lambda name: specs.get(name))])
    async with kernel_client(kernel) as client:
        first = await kernel.get_agent("dyn")
        assert first is not None and first.name == "dyn" and first.spec.description == "v1"
        assert await kernel.get_agent("dyn") is first  # an equal spec keeps the build
        specs["dyn"] = AgentSpec(model="scripted/echo", description="v2", skills={"counting": {"tag": "v2"}})
        second = await kernel.get_agent("dyn")
        assert second is not None and second is not first and second.spec.description == "v2"
        del first, second
        await wait_for(lambda: Counting.stopped == ["v1"])
        del specs["dyn"]
        assert (await chat(client, "dyn")).status_code == 404
        await wait_for(lambda: Counting.stopped == ["v1", "v2"])


async def test_a_file_wins_over_the_resolver_and_reserved_names_are_never_resolved(tmp_path: Path) -> None:
    asked: list[str] = []

    def resolve(name: str) -> AgentSpec:
        asked.append(name)
        return AgentSpec(name=name, model="scripted/echo", description="resolved")

    kernel = dynamic_kernel(tmp_path / "agents", plugins=[plugin_module(robutler_resolve_agent=resolve)])
    write(tmp_path / "agents" / "support.yaml", agent_yaml("file"))
    await kernel.startup()
    agent = await kernel.get_agent("support")
    assert agent is not None and agent.spec.description == "answers file"
    assert await kernel.get_agent("health") is None
    assert await kernel.get_agent("not a name") is None
    assert asked == []
    (tmp_path / "agents" / "support.yaml").unlink()
    agent = await kernel.get_agent("support")
    assert agent is not None and agent.spec.description == "resolved" and asked == ["support"]
    await kernel.shutdown()


async def test_a_resolved_spec_is_held_to_the_config_rules(tmp_path: Path) -> None:
    def resolve(name: str) -> AgentSpec:
        if name == "other":
            return AgentSpec(name="someone-else", model="scripted/echo")
        return AgentSpec(model="gpt-4o", tools=["nope"])

    kernel = dynamic_kernel(tmp_path / "agents", plugins=[plugin_module(robutler_resolve_agent=resolve)])
    await kernel.startup()
    with pytest.raises(AgentConfigError) as caught:
        await kernel.get_agent("dyn")
    assert caught.value.message == (
        "agent 'dyn' cannot be loaded: the spec a plugin resolved: model: `gpt-4o` is not `<provider>/<model>` (e.g. `openai/gpt-4o`)\n"
        "the spec a plugin resolved: tools[0]: `nope` is not a `module:function` reference"
    )
    with pytest.raises(AgentConfigError, match="asked for agent `other`, a plugin answered with agent `someone-else`"):
        await kernel.get_agent("other")
    await kernel.shutdown()


async def test_a_failing_resolver_keeps_the_build_it_made(tmp_path: Path) -> None:
    state = {"down": False}

    def resolve(name: str) -> AgentSpec:
        if state["down"]:
            raise ConnectionError("store is down")
        return AgentSpec(name=name, model="scripted/echo")

    kernel = dynamic_kernel(tmp_path / "agents", plugins=[plugin_module(robutler_resolve_agent=resolve)])
    async with kernel_client(kernel) as client:
        assert answer(await chat(client, "dyn")) == "You said: hi"
        state["down"] = True
        assert answer(await chat(client, "dyn")) == "You said: hi"
        reply = await chat(client, "new")
        assert reply.status_code == 500 and "store is down" in reply.json()["error"]["message"]


async def test_a_resolver_may_refuse_an_agent_with_an_agent_config_error(tmp_path: Path) -> None:
    def resolve(name: str) -> AgentSpec:
        raise AgentConfigError(f"table agents, agent {name!r}: model: bad")

    kernel = dynamic_kernel(tmp_path / "agents", plugins=[plugin_module(robutler_resolve_agent=resolve)])
    async with kernel_client(kernel) as client:
        reply = await chat(client, "dyn")
    assert reply.status_code == 500
    assert reply.json()["error"] == {
        "message": "table agents, agent 'dyn': model: bad",
        "type": "server_error",
        "param": None,
        "code": "agent_config_error",
    }


# -- robutler-kernel check ----------------------------------------------------------------------------


def test_check_validates_every_agent_file_at_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()
    (tmp_path / "robutler.yaml").write_text(
        "agents:\n  bot:\n    model: scripted/echo\nagents_dir: agents\n"
    )
    write(folder / "good.yaml", "description: fine\nmodel: scripted/echo\n")
    write(folder / "bad.yaml", "description: x\nmodel: gpt-4o\nskills:\n  scriptd: {}\n")
    write(folder / "types.yaml", "model: scripted/echo\nmax_tool_rounds: many\n")
    write(folder / "health.yaml", "model: scripted/echo\n")
    write(folder / "bot.yaml", "model: scripted/echo\n")
    write(folder / "skills.yaml", "model: scripted/echo\nskills:\n  scripted:\n    chunk_dlay: 1\n")
    write(folder / "broken.yaml", "model: [\n")
    report = check_file(tmp_path / "robutler.yaml", plugins=[scripted], discover=False)
    assert report.errors == [
        "agents/bad.yaml:2: model: `gpt-4o` is not `<provider>/<model>` (e.g. `openai/gpt-4o`)",
        "agents/bot.yaml:1: agent `bot` is also in the config file "
        f"({tmp_path / 'robutler.yaml'}:2), which wins; rename or remove this file",
        "agents/broken.yaml:2: invalid YAML: expected the node content, but found '<stream end>'"
        " (while parsing a flow node started at line 2)",
        "agents/health.yaml:1: `health` is reserved for a kernel route; reserved: " + ", ".join(sorted(
            ["v1", "health", "ready", "live", "agents", "metrics", "docs", "openapi.json", "favicon.ico", "static", "admin"]
        )),
        "agents/skills.yaml:4: skills.scripted.chunk_dlay: unknown key (did you mean `chunk_delay`?)",
        "agents/types.yaml:2: max_tool_rounds: Expected `int`, got `str`",
    ]
    assert report.agents == [
        "bot: model scripted/echo; skills: scripted; tools: 0",
        "good (agents/good.yaml): model scripted/echo; skills: scripted; tools: 0",
    ]


def test_check_reports_an_agents_dir_that_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "robutler.yaml").write_text("server: {}\nagents_dir: missing\n")
    report = check_file(tmp_path / "robutler.yaml", plugins=[scripted], discover=False)
    assert report.errors == [
        f"{tmp_path / 'robutler.yaml'}:2: agents_dir: `missing` is not a folder ({tmp_path / 'missing'}); create it or fix the path"
    ]


def test_check_reports_a_skill_missing_for_an_agent_file(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "robutler.yaml").write_text("agents_dir: agents\n")
    write(tmp_path / "agents" / "a.yaml", "model: scripted/echo\nskills:\n  scriptd: {}\n")
    report = check_file(tmp_path / "robutler.yaml", plugins=[scripted], discover=False)
    assert report.errors == ["agents/a.yaml:3: skills.scriptd: no installed plugin provides skill `scriptd` (did you mean `scripted`?)"]


# -- property: an agent file is an agent or file:line errors, never a crash ---------------------------

KEYS = [f.encode_name for f in msgspec.structs.fields(AgentSpec)] + ["modle", "skill", "x"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["scripted/echo", "openai/gpt-4o", "gpt-4o", "mod:fn", "${HOME}", "${NOPE}", "$${X}", "", "a b"]),
    st.text(max_size=8),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)
YAMLISH = st.lists(
    st.sampled_from([*"abmodel:{}[]-,'\"\n #&*!|>%@`\t\\$", "model: ", "skills:", "  ", "${", "scripted/echo", "\n  "]), max_size=40
).map("".join)


def _assert_agent_or_errors(text: str, name: str = "support") -> None:
    source = "agents/support.yaml"
    try:
        spec = parse_agent_file(text, name, source, env={"HOME": "/root"})
    except ConfigError as exc:
        lines = str(exc).split("\n")  # not splitlines(): a key may hold \x85 and the like
        assert lines
        for line in lines:
            assert line.startswith(f"{source}:"), line
            rest = line[len(source) + 1 :]
            assert rest.split(":", 1)[0].isdigit() or rest.startswith(" invalid YAML"), line
        return
    assert isinstance(spec, AgentSpec) and spec.name == name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
def test_any_mapping_of_keys_is_an_agent_or_file_line_errors(data: dict[str, Any]) -> None:
    text = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, text)
    _assert_agent_or_errors(text.getvalue())


@settings(max_examples=300, deadline=None)
@given(YAMLISH)
def test_any_text_is_an_agent_or_file_line_errors(text: str) -> None:
    _assert_agent_or_errors(text)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=10))
def test_any_file_name_is_an_agent_or_errors(name: str) -> None:
    try:
        parse_agent_file("model: scripted/echo\n", name, "f.yaml", env={})
    except ConfigError as exc:
        assert str(exc).startswith("f.yaml:1: ")

"""The discover_agents tool: this server, peers over real HTTP (LiveServer), the registry;
failures skipped and named."""

from __future__ import annotations

from typing import Any

import httpx

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import LiveServer, closed_port, kernel_client, make_kernel, stalled_port
from robutler_plugin_discovery.entries import AgentEntry
from robutler_plugin_discovery.runtime import interleave

from .helpers import ALICE_KEY, bearer, catalogue_agents, discovery_kernel, registry_agent, tool_result

ASKER = {"model": "scripted/echo", "description": "Asks around", "skills": {"discovery": None}}


async def ask(client: Any, text: str, agent: str = "asker") -> Any:
    response = await client.post(f"/{agent}/chat/completions", json={"messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    return tool_result(response)


async def test_the_tool_searches_this_server_and_leaves_out_the_asker() -> None:
    kernel = discovery_kernel(catalogue_agents(asker=ASKER))
    async with kernel_client(kernel) as client:
        found = await ask(client, 'call discover_agents query="translate to French" top_k=3')
        nothing = await ask(client, 'call discover_agents query="asks around"')
    assert found == {
        "query": "translate to French",
        "agents": [{"name": "translator", "url": "/translator", "source": "local",
                    "description": "Translates text between languages", "intents": ["translate", "languages"]}],
    }
    assert nothing["agents"] == [] and "note" in nothing


async def test_the_tool_searches_peers_over_http_and_skips_those_that_fail() -> None:
    plain_peer = make_kernel(  # a kernel without the plugin: its built-in GET /agents answers
        {"chef": {"model": "scripted/echo", "description": "Cooks recipes", "intents": ["recipe", "cooking"]}},
        plugins=[scripted],
    )
    discovery_peer = discovery_kernel(
        {"sommelier": {"model": "scripted/echo", "description": "Pairs wine with a recipe", "intents": ["wine"]}},
        {"public_url": "https://wine.example.com"},
    )
    down = f"http://127.0.0.1:{closed_port()}"
    with LiveServer(plain_peer) as one, LiveServer(discovery_peer) as two, stalled_port() as port:
        stalled = f"http://127.0.0.1:{port}"
        kernel = discovery_kernel(catalogue_agents(asker=ASKER), {"peers": [one.url, two.url, down, stalled],
                                                                   "timeout": 0.5})
        async with kernel_client(kernel) as client:
            found = await ask(client, 'call discover_agents query="a recipe" top_k=5')
    assert [(a["name"], a["url"], a["source"]) for a in found["agents"]] == [
        ("chef", f"{one.url}/chef", one.url),
        ("sommelier", "https://wine.example.com/sommelier", two.url),
    ]
    assert found["agents"][0]["intents"] == ["recipe", "cooking"]
    skipped = found["skipped"]
    assert len(skipped) == 2 and skipped[0].startswith(down) and "0.5 s" in skipped[1]


async def test_the_tool_searches_the_registry(tmp_path: Any) -> None:
    registry = discovery_kernel(
        {"registry": registry_agent()}, {"registry": {"path": str(tmp_path / "registry.db")}}
    )
    with LiveServer(registry) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            published = await http.post(
                "/registry/agents/register", headers=bearer(ALICE_KEY),
                json={"name": "travel", "url": "https://trips.example.com/travel", "intents": ["book a flight"]},
            )
            assert published.status_code == 200, published.text
        kernel = discovery_kernel(catalogue_agents(asker=ASKER), {"registry_url": server.url})
        async with kernel_client(kernel) as client:
            found = await ask(client, 'call discover_agents query="flight to Rome"')
    assert found["agents"] == [
        {"name": "travel", "url": "https://trips.example.com/travel", "source": "registry", "intents": ["book a flight"]}
    ]


def test_interleave_takes_each_source_in_turn_and_each_url_once() -> None:
    def e(name: str, url: str | None) -> AgentEntry:
        return AgentEntry(name, url=url)

    lists = [[e("a", None), e("b", None)], [e("x", "u1"), e("y", "u2")], [e("x2", "u1"), e("z", "u3")]]
    assert [x.name for x in interleave(lists, 10)] == ["a", "x", "b", "y", "z"]
    assert [x.name for x in interleave(lists, 2)] == ["a", "x"]

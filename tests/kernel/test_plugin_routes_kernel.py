"""``robutler_routes(kernel)``: a plugin's routes are bound to the kernel serving them, and
a plugin's ``GET /agents`` is matched before the kernel's built-in search."""

from __future__ import annotations

import types
from typing import Any

import robutler_plugin_scripted as scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_specs import HttpRequest, HttpRoute, KernelAPI, hookimpl


def routes_plugin(name: str) -> Any:
    """A plugin whose ``/agents`` and ``/whoami`` answer from the kernel they were given."""

    def robutler_routes(kernel: KernelAPI) -> list[HttpRoute]:
        async def agents(request: HttpRequest) -> dict[str, Any]:
            return {"object": "list", "data": [{"name": n, "by": name} for n in kernel.agents]}

        async def whoami(request: HttpRequest) -> dict[str, Any]:
            return {"agents": sorted(kernel.agents)}

        return [HttpRoute("/agents", agents), HttpRoute("/whoami", whoami)]

    module = types.ModuleType(name)
    module.robutler_routes = hookimpl(robutler_routes)  # type: ignore[attr-defined]
    return module


async def test_plugin_routes_get_their_own_kernel_and_replace_get_agents() -> None:
    one = make_kernel({"ada": {"model": "scripted/echo"}}, plugins=[scripted, routes_plugin("one")])
    two = make_kernel({"bob": {"model": "scripted/echo"}}, plugins=[scripted, routes_plugin("two")])
    async with kernel_client(one) as a, kernel_client(two) as b:
        assert (await a.get("/whoami")).json() == {"agents": ["ada"]}
        assert (await b.get("/whoami")).json() == {"agents": ["bob"]}
        assert (await a.get("/agents")).json() == {"object": "list", "data": [{"name": "ada", "by": "one"}]}


async def test_without_a_plugin_route_the_built_in_search_answers() -> None:
    kernel = make_kernel({"ada": {"model": "scripted/echo", "description": "math"}}, plugins=[scripted])
    async with kernel_client(kernel) as client:
        data = (await client.get("/agents", params={"search": "math"})).json()["data"]
    assert [a["name"] for a in data] == ["ada"]

"""The OpenAPI document: served, complete (every route of the app), its references resolved."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.routing import Route

import robutler_plugin_scripted as scripted
from robutler_kernel.openapi import ROUTES, document
from robutler_kernel.testing import kernel_client, make_kernel


def _app_routes(app: Any) -> set[tuple[str, str]]:
    while not hasattr(app, "routes"):
        app = getattr(app, "app", None) or app.inner  # the pure-ASGI layers around Starlette
    found = set()
    for route in app.routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((re.sub(r"\{(\w+):path\}", r"{endpoint}", route.path), method.lower()))
    return found


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "$ref"] + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


async def test_served_and_covers_every_route() -> None:
    kernel = make_kernel(plugins=[scripted])
    async with kernel_client(kernel) as client:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        doc = response.json()
        app = kernel.asgi_app()
    assert doc["openapi"].startswith("3.1")
    declared = {(path, method) for path, item in doc["paths"].items() for method in item}
    missing = _app_routes(app) - declared
    assert not missing, f"routes of the app missing from the OpenAPI document: {sorted(missing)}"


def test_references_resolve_and_bodies_are_the_wire_types() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"}
    assert "messages" in schemas["ChatCompletionRequest"]["required"]
    assert {op.path for op in ROUTES} <= set(doc["paths"])
    json.dumps(doc)  # plain JSON

"""An error answered after finalize_connection ran carries what it reported (the cost of
what ran before the error), beside x-request-id."""

from __future__ import annotations

import robutler_plugin_scripted
from robutler_kernel.testing import kernel_client, make_kernel
from robutler_specs import Forbidden, LLMCall, LLMResult, RequestContext, Skill, hookimpl


class Meter(Skill):
    """Charges something, then refuses the answer; reports the charge when it ends."""

    name = "meter"

    @hookimpl
    def after_llm_call(self, ctx: RequestContext, call: LLMCall, result: LLMResult) -> None:
        raise Forbidden("the answer is not for you")

    @hookimpl
    def finalize_connection(self, ctx: RequestContext, error: BaseException | None) -> None:
        ctx.response_headers["X-Robutler-Cost"] = "0.25"


async def test_an_error_after_work_carries_the_cost_header() -> None:
    kernel = make_kernel({"a": {"model": "scripted/echo", "skills": {"meter": None}}},
                         plugins=[robutler_plugin_scripted, Meter])
    async with kernel_client(kernel) as client:
        response = await client.post("/a/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 403
    assert response.headers["x-robutler-cost"] == "0.25"
    assert response.headers["x-request-id"].startswith("chatcmpl-")


async def test_the_callers_request_id_is_answered_when_sane() -> None:
    import robutler_plugin_scripted as scripted

    kernel = make_kernel(plugins=[scripted])
    body = {"messages": [{"role": "user", "content": "hi"}]}
    async with kernel_client(kernel) as client:
        given = await client.post("/assistant/chat/completions", json=body, headers={"X-Request-Id": "lb-7f3a:42"})
        odd = await client.post("/assistant/chat/completions", json=body, headers={"X-Request-Id": "bad id\twith spaces"})
        failed = await client.post("/nope/chat/completions", json=body, headers={"X-Request-Id": "lb-7f3a:43"})
    assert given.headers["x-request-id"] == "lb-7f3a:42"  # the load balancer's logs and ours meet
    assert given.json()["id"].startswith("chatcmpl-")  # the completion keeps its own id
    assert odd.headers["x-request-id"].startswith("chatcmpl-")
    assert failed.status_code == 404

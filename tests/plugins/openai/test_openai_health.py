"""The openai skill's health check: GET {base_url}/models on whichever transport the skill
uses (the direct transport never imports the SDK for it), a failure named plainly."""

from __future__ import annotations

import subprocess
import sys

import pytest
from openai_helpers import run, started

from robutler_kernel.testing import FakeOpenAI, closed_port


def test_the_check_lists_the_models_on_either_transport(fake: FakeOpenAI, openai_transport: str) -> None:
    async def body() -> dict[str, object]:
        async with started(fake) as skill:
            [check] = skill.health_checks().values()
            return await check()  # type: ignore[no-any-return]

    answer = run(body())
    assert answer["models"] >= 1 and answer["base_url"] == fake.base_url
    assert fake.last_request.path == "/v1/models"


def test_an_unreachable_upstream_fails_the_check_with_what_to_check(openai_transport: str) -> None:
    async def body() -> None:
        async with started(None, base_url=f"http://127.0.0.1:{closed_port()}/v1") as skill:
            [check] = skill.health_checks().values()
            await check()

    with pytest.raises(RuntimeError, match=r"GET http://127\.0\.0\.1:\d+/v1/models: .*base_url"):
        run(body())


def test_the_direct_transport_checks_health_without_importing_the_sdk(fake: FakeOpenAI) -> None:
    script = f"""
import asyncio, sys
from robutler_kernel.testing import StandaloneKernel
from robutler_plugin_openai import OpenAIConfig, OpenAISkill
from robutler_specs import AgentSpec

async def main():
    skill = OpenAISkill(OpenAIConfig(api_key="k", base_url={fake.base_url!r}), AgentSpec(name="a"))
    skill.kernel = StandaloneKernel()
    await skill.start()
    [check] = skill.health_checks().values()
    answer = await check()
    await skill.stop()
    print(answer["models"], "openai" in sys.modules)

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    models, imported = done.stdout.split()
    assert int(models) >= 1 and imported == "False"

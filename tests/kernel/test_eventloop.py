"""serve's event loop: uvloop when installed, asyncio's on request."""

from __future__ import annotations

import asyncio

import pytest

from robutler_kernel import eventloop


def test_auto_picks_uvloop_when_installed() -> None:
    import uvloop  # noqa: F401  # a dependency of the kernel on Linux and macOS

    name, factory = eventloop.loop_factory("auto")
    assert name == "uvloop" and factory is not None


def test_the_environment_may_choose_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV_LOOP, "asyncio")
    assert eventloop.loop_factory() == ("asyncio", None)


def test_an_unknown_choice_says_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="auto, uvloop or asyncio"):
        eventloop.loop_factory("tokio")


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_run_returns_the_result_on_that_loop(choice: str) -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    module = eventloop.run(main(), choice)
    expected, _ = eventloop.loop_factory(choice)
    assert module.startswith("uvloop") if expected == "uvloop" else module.startswith("asyncio")

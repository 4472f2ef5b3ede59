"""The in-process backend: window on write, TTL on its clock, LRU bound."""

from __future__ import annotations

from typing import Any

from robutler_plugin_memory import InProcessStore
from robutler_specs import Message


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(clock: Clock | None = None, **kw: Any) -> InProcessStore:
    settings: dict[str, Any] = {"max_messages": 4, "max_tokens": None, "ttl_seconds": None, "max_conversations": 3}
    settings.update(kw)
    return InProcessStore(**settings, clock=clock or Clock())


def msgs(*texts: str) -> list[Message]:
    return [Message(role="user" if i % 2 == 0 else "assistant", content=t) for i, t in enumerate(texts)]


def texts(messages: list[Message]) -> list[str]:
    return [m.text() for m in messages]


async def test_append_then_load_keeps_order_and_the_window() -> None:
    s = store()
    await s.append("k", msgs("1", "2"))
    await s.append("k", msgs("3", "4"))
    await s.append("k", msgs("5", "6"))
    assert texts(await s.load("k")) == ["3", "4", "5", "6"]
    assert await s.load("unknown") == []


async def test_replace_drops_what_was_there() -> None:
    s = store()
    await s.append("k", msgs("1", "2"))
    await s.replace("k", msgs("a", "b"))
    assert texts(await s.load("k")) == ["a", "b"]
    await s.replace("k", [])
    assert await s.load("k") == [] and len(s) == 0


async def test_ttl_forgets_a_conversation_after_its_last_write() -> None:
    clock = Clock()
    s = store(clock, ttl_seconds=60)
    await s.append("k", msgs("1", "2"))
    clock.now += 59
    assert texts(await s.load("k")) == ["1", "2"]
    await s.append("k", msgs("3", "4"))  # a write resets the TTL
    clock.now += 59
    assert texts(await s.load("k")) == ["1", "2", "3", "4"]
    clock.now += 1
    assert await s.load("k") == []
    assert len(s) == 0  # and it is gone, not just hidden
    await s.append("k", msgs("fresh"))
    assert texts(await s.load("k")) == ["fresh"]


async def test_lru_bound_drops_the_least_recently_used_conversation() -> None:
    s = store(max_conversations=3)
    for key in ("a", "b", "c"):
        await s.append(key, msgs(key))
    await s.load("a")  # a is now the most recently used
    await s.append("d", msgs("d"))
    assert len(s) == 3
    assert await s.load("b") == []
    assert [texts(await s.load(k)) for k in ("a", "c", "d")] == [["a"], ["c"], ["d"]]


async def test_health_check_reports_the_lru_fill() -> None:
    s = store(max_conversations=3)
    await s.append("a", msgs("a"))
    (name, check), = s.health_checks().items()
    assert name.startswith("short_term_memory:memory")
    assert await check() == {"conversations": 1, "max_conversations": 3}


async def test_messages_are_copied_in_and_out() -> None:
    """A hook editing a message in place (a redaction) never changes the stored one."""
    s = store()
    original = msgs("secret")
    await s.append("k", original)
    original[0].content = "changed after storing"
    loaded = await s.load("k")
    loaded[0].content = "changed after loading"
    assert texts(await s.load("k")) == ["secret"]

"""The Redis backend against the local Redis: atomic windowed writes, TTL, PING, failures."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robutler_plugin_memory import InProcessStore, RedisStore, StoreUnavailable
from robutler_plugin_memory.codec import decode, decode_all, encode
from robutler_plugin_memory.redis_store import SharedClients, redact
from robutler_specs import FunctionCall, Message, ToolCall

from .helpers import CLOSED_REDIS_URL, REDIS_URL, unique_prefix


@asynccontextmanager
async def silent_redis_store(timeout: float) -> AsyncIterator[RedisStore]:
    """A store on a server that accepts connections but never replies."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    s = make(f"redis://127.0.0.1:{port}/0", timeout=timeout)
    try:
        yield s
    finally:
        await s.stop()
        server.close()
        await server.wait_closed()


def make(url: str = REDIS_URL, **kw: Any) -> RedisStore:
    settings_: dict[str, Any] = {"max_messages": 10, "max_tokens": None, "ttl_seconds": None, "timeout": 2.0}
    settings_.update(kw)
    return RedisStore(url, **settings_)


@pytest.fixture
async def stm_store() -> AsyncIterator[RedisStore]:
    s = make()
    await s.start()
    yield s
    await s.stop()


def msgs(*texts: str) -> list[Message]:
    return [Message(role="user" if i % 2 == 0 else "assistant", content=t) for i, t in enumerate(texts)]


def texts(messages: list[Message]) -> list[str]:
    return [m.text() for m in messages]


def test_codec_round_trips_and_rejects_foreign_items() -> None:
    message = Message(role="assistant", tool_calls=[ToolCall(id="c1", function=FunctionCall(name="f", arguments="{}"))])
    assert decode(encode(message)) == message
    assert encode(Message(role="tool", tool_call_id="c1", content="x")).split(b":")[1] == b"t"
    for bad in (b"hello", b"1:x:{}", b"1:m:not json"):
        with pytest.raises(ValueError, match="not a stored message"):
            decode(bad)


def _stored(message: Message) -> tuple[bytes, Message]:
    return encode(message), message


#: (stored item, the message it must read as, or None: skipped). The plugin's own items,
#: foreign items of known outcome (newlines, headers in odd places, two messages in one
#: item), and random bytes that do not start with a header.
stored_items = st.one_of(
    st.builds(lambda t, tool: _stored(Message(role="tool", tool_call_id="c1", content=t) if tool
                                      else Message(role="user", content=t)),
              st.text(max_size=20), st.booleans()),
    st.sampled_from([
        (b"garbage", None), (b"", None), (b"1:x:{}", None), (b"1:m:not json", None),
        (b'3:m:{"role":"user",\n"content":"a newline between tokens"}',
         Message(role="user", content="a newline between tokens")),
        (b'x\n3:m:{"role":"user","content":"a header after a newline"}', None),
        (b'3:m:{"role":"user"}\n4:m:{"role":"user"}', None),
        (b'3:t:{"role":"tool","content":"x"}', Message(role="tool", content="x")),
        (b'12:m:{"role":"nobody"}', None), (b'3:m:{"role":"user"},{"role":"user"}', None),
    ]),
    st.binary(max_size=30).filter(lambda b: re.match(rb"\d+:[tm]:", b) is None).map(lambda b: (b, None)),
)


@settings(max_examples=500)
@given(st.lists(stored_items, max_size=12))
def test_property_reading_a_conversation_keeps_its_messages_in_order_and_skips_the_rest(
    items: list[tuple[bytes, Message | None]],
) -> None:
    """Whatever is stored under our keys, each item reads as its own message or is skipped
    and counted: two items never make one message, one item never makes two."""
    expected = [message for _, message in items if message is not None]
    assert decode_all([item for item, _ in items]) == (expected, len(items) - len(expected))


def test_redact_hides_the_password() -> None:
    assert redact("redis://user:secret@host:6380/1") == "redis://user:***@host:6380/1"
    assert redact("redis://:secret@host/0") == "redis://:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


async def test_append_load_and_window(stm_store: RedisStore, stm_prefix: str, stm_redis: aioredis.Redis) -> None:
    key = stm_prefix + "bot:c:anon:1"
    await stm_store.append(key, msgs("1", "2"))
    await stm_store.append(key, msgs("3", "4"))
    await stm_store.append(key, msgs("5", "6", "7", "8", "9", "10", "11", "12"))
    assert texts(await stm_store.load(key)) == ["3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
    assert await stm_redis.llen(key) == 10  # trimmed on the server, not only on read
    assert await stm_store.load(stm_prefix + "nothing") == []


async def test_newlines_and_any_text_survive_the_one_reply_read(stm_store: RedisStore, stm_prefix: str) -> None:
    odd = ["line 1\nline 2\r\n", "tab\there \u2028 \x00 nul", "émoji 🙂 \\n literal", ""]
    messages = [Message(role="user", content=t) for t in odd]
    messages.append(Message(role="assistant", content=[{"type": "text", "text": "parts\n"}]))
    await stm_store.append(stm_prefix + "k", messages)
    assert await stm_store.load(stm_prefix + "k") == messages


async def test_replace_is_one_write(stm_store: RedisStore, stm_prefix: str) -> None:
    key = stm_prefix + "k"
    await stm_store.append(key, msgs("1", "2"))
    await stm_store.replace(key, msgs("a", "b", "c"))
    assert texts(await stm_store.load(key)) == ["a", "b", "c"]


async def test_ttl_is_set_on_every_write_and_expires_the_conversation(
    stm_prefix: str, stm_redis: aioredis.Redis
) -> None:
    # TTLs of seconds, so that a busy machine's pauses cannot expire what must survive.
    s = make(ttl_seconds=2)
    await s.start()
    try:
        key = stm_prefix + "k"
        await s.append(key, msgs("1"))
        assert 0 < await stm_redis.pttl(key) <= 2000
        await asyncio.sleep(1.0)
        await s.append(key, msgs("2"))  # resets the TTL: without that, 1,000 ms at most would be left
        assert await stm_redis.pttl(key) > 1000
        assert texts(await s.load(key)) == ["1", "2"]
        deadline = time.monotonic() + 10
        while await stm_redis.exists(key) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await stm_redis.exists(key) == 0
        assert await s.load(key) == []
    finally:
        await s.stop()


async def test_no_ttl_means_no_expiry(stm_store: RedisStore, stm_prefix: str, stm_redis: aioredis.Redis) -> None:
    await stm_store.append(stm_prefix + "k", msgs("1"))
    assert await stm_redis.pttl(stm_prefix + "k") == -1


async def test_concurrent_appends_are_atomic(stm_prefix: str) -> None:
    """Many writers on one conversation: every batch lands whole, none interleaved."""
    s = make(max_messages=1000)
    await s.start()
    try:
        key = stm_prefix + "k"
        batches = [[Message(role="user", content=f"{w}-{i}") for i in range(5)] for w in range(40)]
        await asyncio.gather(*(s.append(key, batch) for batch in batches))
        stored = texts(await s.load(key))
        assert len(stored) == 200
        for start in range(0, 200, 5):
            writer = {t.split("-")[0] for t in stored[start:start + 5]}
            assert len(writer) == 1, f"batch interleaved: {stored[start:start + 5]}"
    finally:
        await s.stop()


async def test_unreadable_items_are_skipped(stm_store: RedisStore, stm_prefix: str, stm_redis: aioredis.Redis) -> None:
    key = stm_prefix + "k"
    await stm_store.append(key, msgs("1"))
    await stm_redis.rpush(key, b"garbage")
    assert texts(await stm_store.load(key)) == ["1"]


async def test_a_key_of_another_type_names_key_prefix(stm_store: RedisStore, stm_prefix: str,
                                                     stm_redis: aioredis.Redis) -> None:
    await stm_redis.set(stm_prefix + "k", "a string")
    with pytest.raises(StoreUnavailable, match="key_prefix"):
        await stm_store.append(stm_prefix + "k", msgs("1"))


async def test_health_check_pings() -> None:
    s = make()
    await s.start()
    try:
        (name, check), = s.health_checks().items()
        assert name == "short_term_memory:redis at " + redact(REDIS_URL)
        assert await check() == "PONG"
    finally:
        await s.stop()


async def test_redis_down_is_store_unavailable_quickly_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    s = make(CLOSED_REDIS_URL, timeout=1.0)
    await s.start()  # not fatal: logged
    assert "not reachable yet" in caplog.text
    try:
        started = time.monotonic()
        for operation in (s.load("k"), s.append("k", msgs("1")), s.replace("k", msgs("1")), s.ping()):
            with pytest.raises(StoreUnavailable) as info:
                await operation
            assert info.value.backend == "redis at " + CLOSED_REDIS_URL
        (check,) = s.health_checks().values()
        with pytest.raises(StoreUnavailable):
            await check()
        assert time.monotonic() - started < 5
    finally:
        await s.stop()


async def test_a_redis_that_does_not_answer_times_out() -> None:
    """A server that accepts connections but never replies: the timeout bounds the wait."""
    async with silent_redis_store(timeout=0.3) as s:
        await s.start()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"no answer within 0.3 s|Timeout"):
            await s.ping()
        assert time.monotonic() - started < 2


async def test_answered_commands_never_time_out_however_long_the_store_runs(stm_prefix: str) -> None:
    """One timer watches every command's deadline: commands answered in time, before and
    after many deadlines have passed, are never failed by it."""
    s = make(timeout=0.5)  # pauses of a busy machine stay well under it
    await s.start()
    failed = Failures()
    try:
        key = stm_prefix + "k"
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # five deadlines pass
            assert s.write_soon(key, msgs("x"), replace=False, failed=failed)
            await asyncio.gather(*(s.load(key) for _ in range(5)))
            await asyncio.sleep(0.03)
        assert await s.ping()
    finally:
        await s.stop()
    assert failed == [] and not s._deadlines


async def test_agents_on_one_url_share_one_pool() -> None:
    shared = SharedClients()
    a, b = make(shared=shared), make(shared=shared)
    await a.start()
    await b.start()
    assert a.client is b.client
    await a.stop()
    assert await b.ping()  # still open for b
    await b.stop()
    assert shared._clients == {}


# -- writes the request does not wait for ----------------------------------------------------


class Failures(list[StoreUnavailable]):
    """The ``failed`` callback of :meth:`RedisStore.write_soon`, remembering each call."""

    def __call__(self, exc: StoreUnavailable) -> None:
        self.append(exc)


async def test_a_write_sent_soon_is_seen_by_the_next_read_at_once(stm_store: RedisStore, stm_prefix: str,
                                                                   stm_redis: aioredis.Redis) -> None:
    key = stm_prefix + "k"
    failed = Failures()
    await stm_store.load(key)  # connected
    assert stm_store.write_soon(key, msgs("1", "2"), replace=False, failed=failed)
    assert texts(await stm_store.load(key)) == ["1", "2"]  # no wait for the write's reply in between
    assert stm_store.write_soon(key, msgs("3"), replace=True, failed=failed)
    assert texts(await stm_store.load(key)) == ["3"]
    assert stm_store.write_soon(key, [], replace=False, failed=failed)  # nothing to append: nothing sent
    await stm_store.stop()
    assert failed == []
    assert [decode(i).text() for i in await stm_redis.lrange(key, 0, -1)] == ["3"]


async def test_a_write_redis_refuses_after_the_request_is_reported(stm_store: RedisStore, stm_prefix: str,
                                                                   stm_redis: aioredis.Redis) -> None:
    key = stm_prefix + "k"
    await stm_redis.set(key, "a string")
    await stm_store.ping()
    failed = Failures()
    assert stm_store.write_soon(key, msgs("1"), replace=False, failed=failed)
    assert failed == []  # not known yet
    await stm_store.stop()  # waits for the reply
    (exc,) = failed
    assert "key_prefix" in exc.cause and exc.backend == "redis at " + REDIS_URL


async def test_stop_waits_for_the_writes_in_flight(stm_prefix: str, stm_redis: aioredis.Redis) -> None:
    s = make(max_messages=1000)
    await s.start()
    failed = Failures()
    for i in range(50):
        assert s.write_soon(stm_prefix + "k", msgs(str(i)), replace=False, failed=failed)
    await s.stop()
    assert failed == [] and not s._in_flight
    assert await stm_redis.llen(stm_prefix + "k") == 50


async def test_without_a_connection_nothing_is_sent_soon() -> None:
    s = make(CLOSED_REDIS_URL, timeout=1.0)
    await s.start()
    try:
        failed = Failures()
        assert not s.write_soon("k", msgs("1"), replace=False, failed=failed)
        assert failed == []
    finally:
        await s.stop()


async def test_a_write_without_an_answer_fails_after_the_timeout_and_drops_the_connection() -> None:
    async with silent_redis_store(timeout=0.3) as s:
        await s.start()  # the PING times out: the connection is dropped
        with pytest.raises(StoreUnavailable):
            await s.ping()  # connects again, times out again
        await s.client._connection()
        failed = Failures()
        started = time.monotonic()
        assert s.write_soon("k", msgs("1"), replace=False, failed=failed)
        while not failed and time.monotonic() - started < 3:
            await asyncio.sleep(0.02)
        (exc,) = failed
        assert "no answer within 0.3 s" in exc.cause
        assert time.monotonic() - started < 2
        assert s.client._protocol is None  # not reused


def test_property_writes_sent_soon_read_back_like_awaited_ones() -> None:
    """Any mix of awaited and not-awaited writes and reads on one store reads back what the
    in-process store holds after the same writes: no read overtakes an earlier write."""
    prefix = unique_prefix()
    with asyncio.Runner() as runner:
        counter = iter(range(1_000_000))

        @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(batches(), st.lists(st.sampled_from(["append", "soon", "replace-soon"]), min_size=6, max_size=6),
               st.lists(st.booleans(), min_size=6, max_size=6), st.integers(1, 10))
        def check(writes: list[list[Message]], how: list[str], read: list[bool], max_messages: int) -> None:
            async def run() -> None:
                key = f"{prefix}{next(counter)}"
                redis_store = make(max_messages=max_messages, ttl_seconds=60)
                memory_store = InProcessStore(max_messages=max_messages, max_tokens=None,
                                              ttl_seconds=60, max_conversations=10)
                await redis_store.start()
                failed = Failures()
                try:
                    for batch, kind, read_now in zip(writes, how, read, strict=False):
                        replace = kind == "replace-soon"
                        if kind == "append":
                            await redis_store.append(key, batch)
                        else:
                            assert redis_store.write_soon(key, batch, replace=replace, failed=failed)
                        memory_store.write_soon(key, batch, replace=replace, failed=failed)
                        if read_now:
                            assert await redis_store.load(key) == await memory_store.load(key)
                    assert await redis_store.load(key) == await memory_store.load(key)
                finally:
                    await redis_store.client.execute("DEL", key)
                    await redis_store.stop()
                assert failed == []

            runner.run(run())

        check()


async def test_a_redis_that_forgot_the_scripts_still_reads_and_writes(stm_prefix: str,
                                                                     stm_redis: aioredis.Redis) -> None:
    """SCRIPT FLUSH, as after a Redis restart: neither the read (no script) nor a write
    (EVAL, not EVALSHA; not even one not waited for) depends on the script cache."""
    key = stm_prefix + "k"
    failed = Failures()
    for fresh_connection in (False, True):
        s = make()
        await s.start()
        try:
            await s.append(key, msgs("1"))
            await stm_redis.script_flush()
            if fresh_connection:
                s.client.reset()
            sent = s.write_soon(key, msgs("2"), replace=False, failed=failed)
            assert sent is not fresh_connection  # no open connection: nothing is sent
            assert texts(await s.load(key))[-1] == ("2" if sent else "1")
            await s.append(key, msgs("3"))
            assert texts(await s.load(key))[-1] == "3"
        finally:
            await s.stop()
        await stm_redis.delete(key)
    assert failed == []


def test_an_invalid_url_is_a_value_error() -> None:
    s = make("http://not-redis")
    with pytest.raises(ValueError):
        asyncio.run(s.start())


# -- the Lua window is the Python window --------------------------------------------------------


@st.composite
def batches(draw: st.DrawFn) -> list[list[Message]]:
    ids = iter(range(10_000))
    out = []
    for _ in range(draw(st.integers(1, 6))):
        batch: list[Message] = []
        for kind in draw(st.lists(st.sampled_from(["user", "assistant", "calls", "tool"]), min_size=1, max_size=6)):
            text = draw(st.text(alphabet="ab ", max_size=50))
            if kind == "calls":
                calls = [ToolCall(id=f"c{next(ids)}", function=FunctionCall(name="f")) for _ in range(draw(st.integers(1, 2)))]
                batch.append(Message(role="assistant", content=text or None, tool_calls=calls))
                batch.extend(Message(role="tool", tool_call_id=c.id, content=text) for c in calls)
            elif kind == "tool":
                batch.append(Message(role="tool", tool_call_id="c-x", content=text))
            else:
                batch.append(Message(role=kind, content=text))  # type: ignore[arg-type]
        out.append(batch)
    return out


def test_property_redis_keeps_exactly_the_window_the_in_process_store_keeps() -> None:
    prefix = unique_prefix()
    with asyncio.Runner() as runner:
        counter = iter(range(1_000_000))

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(batches(), st.integers(1, 10), st.one_of(st.none(), st.integers(5, 120)))
        def check(writes: list[list[Message]], max_messages: int, max_tokens: int | None) -> None:
            async def run() -> tuple[list[Message], list[Message]]:
                key = f"{prefix}{next(counter)}"
                redis_store = make(max_messages=max_messages, max_tokens=max_tokens, ttl_seconds=60)
                memory_store = InProcessStore(max_messages=max_messages, max_tokens=max_tokens,
                                              ttl_seconds=60, max_conversations=10)
                await redis_store.start()
                try:
                    for batch in writes:
                        await redis_store.append(key, batch)
                        await memory_store.append(key, batch)
                    return await redis_store.load(key), await memory_store.load(key)
                finally:
                    await redis_store.client.execute("DEL", key)
                    await redis_store.stop()

            in_redis, in_process = runner.run(run())
            assert in_redis == in_process

        check()

"""What vector memory costs: ``python -m bench.targets_vector``.

Like :mod:`bench.targets_longterm` (whose baselines and runner it shares): agents on the
offline ``scripted/echo`` model that differ only in their memory, in one run:

- reads: ``memory-none`` beside ``vector-lite`` (milvus-lite inside the server process)
  and ``vector-server`` (a Milvus-protocol server over gRPC: milvus-lite's own server,
  ``python -m milvus_lite server``, as a local stand-in for Milvus) with
  ``retrieve.enabled``: every request embeds the message (the offline hashing embedder)
  and searches the caller's :data:`SEEDED_DOCS` documents (among as many of another user);
- writes: ``store-noop`` (a plain ``store_document`` function) beside
  ``vector-lite-write`` and ``vector-server-write``: every request stores a document.

Before the load, the skill's own calls are timed in-process (wall and CPU microseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .targets import AGENT, PROMPT, Target
from .targets_longterm import (
    BASELINES,
    BENCH_USER,
    agent_config,
    build_parser,
    cleanup,
    measure,
    run_dir,
    run_targets,
    user_body,
)

SEEDED_DOCS = 200
WRITE_PROMPT = 'call store_document text="a note the benchmark stores on every request"'

#: The Milvus-protocol server of this run (see :func:`milvus_server`).
_SERVER: dict[str, str] = {}


def store_document(text: str) -> dict[str, Any]:
    """A tool named like the skill's that stores nothing (the write baseline)."""
    return {"id": "0" * 32, "stored": True}


def lite_uri(name: str) -> str:
    """A milvus-lite file of this run (one per server process: milvus-lite serves one)."""
    return str(run_dir() / f"{name}.db")


def server_uri(name: str) -> str:
    """The run's Milvus-protocol server."""
    if "uri" not in _SERVER:
        raise RuntimeError("the vector-server targets need the server that main() starts")
    return _SERVER["uri"]


async def seed_async(config: dict[str, Any], docs: int = SEEDED_DOCS) -> None:
    """Store ``docs`` documents for the bench user and as many for another user, through
    the plugin's own code (and release milvus-lite's lock afterwards)."""
    import msgspec

    from robutler_plugin_vector import HashingEmbedder, VectorConfig
    from robutler_plugin_vector.milvus import MilvusStore
    from robutler_plugin_vector.scope import Scope, user_key

    vector_config = msgspec.convert(config, VectorConfig)
    embedder = HashingEmbedder(vector_config.hash_dimensions)
    topics = ["gardening", "invoices", "travel", "recipes", "meetings", "music", "sports", "weather"]
    store = MilvusStore(vector_config)
    await store.start()
    try:
        await store.ensure(embedder.dimensions, embedder.identity)
        for n, user in enumerate((BENCH_USER, "someone-else")):
            scope = Scope(AGENT, user_key("param", user))  # as the request's `user` field
            for i in range(docs):
                text = f"note {i} about {topics[i % len(topics)]}: words the benchmark request may echo back"
                await store.insert(scope, f"{n:x}{i:031x}", embedder.embed_one(text), text, {"n": i})
        await store.flush()  # as a server would have sealed them by the time of the load
    finally:
        await store.stop()


def seed(config: dict[str, Any], docs: int = SEEDED_DOCS) -> None:
    """:func:`seed_async`, before the server starts."""
    asyncio.run(seed_async(config, docs))


def read_skill_config(uri: Callable[[str], str], name: str) -> dict[str, Any]:
    """The ``vector_memory`` config of a read target: automatic retrieval on."""
    return {"uri": uri(name), "collection": name, "embedder": "hashing",
            "retrieve": {"enabled": True, "top_k": 3, "min_score": 0.2}}


def read_config(uri: Callable[[str], str], name: str) -> Callable[[str], dict[str, Any]]:
    """A config builder for a read target (seeded by :func:`prepare` beforehand)."""
    return lambda upstream: agent_config({"vector_memory": read_skill_config(uri, name)})


def prepare(names: list[str]) -> None:
    """Seed the read targets' collections before the harness starts anything (milvus-lite
    opens a gRPC port while seeding: not while the harness is choosing ports)."""
    if "vector-lite" in names:
        seed(read_skill_config(lite_uri, "docs_read"))
    if "vector-server" in names:
        seed(read_skill_config(server_uri, "docs_read"))


def write_config(uri: Callable[[str], str], name: str) -> Callable[[str], dict[str, Any]]:
    """A config builder: the tools only (every request stores a document)."""
    return lambda upstream: agent_config({"vector_memory": {"uri": uri(name), "collection": name, "embedder": "hashing"}})


NEEDS = ("robutler_plugin_scripted", "robutler_plugin_vector", "pymilvus")

VECTOR_BASELINES: dict[str, Target] = {
    "memory-none": BASELINES["memory-none"],
    "store-noop": Target(
        "store-noop", "robutler", "scripted/echo calling a no-op `store_document` tool (the write baseline)",
        config=lambda upstream: agent_config(tools=["bench.targets_vector:store_document"]),
        needs=("robutler_plugin_scripted",), uses_upstream=False, body=user_body(WRITE_PROMPT),
    ),
}

VECTOR_TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("vector-lite", "robutler", f"vector_memory on milvus-lite, retrieve top 3 of {SEEDED_DOCS} documents",
               config=read_config(lite_uri, "docs_read"), baseline="memory-none", needs=NEEDS,
               uses_upstream=False, body=user_body(PROMPT)),
        Target("vector-server", "robutler",
               f"vector_memory on a Milvus-protocol server (milvus-lite's), retrieve top 3 of {SEEDED_DOCS}",
               config=read_config(server_uri, "docs_read"), baseline="memory-none", needs=NEEDS,
               uses_upstream=False, body=user_body(PROMPT)),
        Target("vector-lite-write", "robutler", "vector_memory on milvus-lite, store_document on every request",
               config=write_config(lite_uri, "docs_write"), baseline="store-noop", needs=NEEDS,
               uses_upstream=False, body=user_body(WRITE_PROMPT)),
        Target("vector-server-write", "robutler", "vector_memory on the server, store_document on every request",
               config=write_config(server_uri, "docs_write"), baseline="store-noop", needs=NEEDS,
               uses_upstream=False, body=user_body(WRITE_PROMPT)),
    ]
}


# -- in-process cost per operation ------------------------------------------------------------------


def _cases(skill: Any, ctx: Any) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    return [
        ("retrieve (build_prompt: top 3 of 200)", lambda: skill.build_prompt(ctx)),
        ("search_memory (top 5)", lambda: skill.search_memory("notes about travel", ctx, 5)),
        ("store_document", lambda: skill.store_document("a note the benchmark stores", ctx)),
    ]


async def micro(seconds: float, backends: list[str]) -> list[list[Any]]:
    """Rows: backend, operation, wall us, cpu us (this process), calls: the skill's own calls."""
    import msgspec

    from robutler_plugin_vector import VectorConfig, VectorMemory
    from robutler_specs import AgentSpec, Message, RequestContext

    rows: list[list[Any]] = []
    spec = AgentSpec(name=AGENT)
    for name in backends:
        config = read_skill_config(lite_uri if name == "milvus-lite" else server_uri, "docs_micro")
        await seed_async(config)
        skill = VectorMemory(msgspec.convert(config, VectorConfig), spec)
        await skill.start()
        ctx = RequestContext(spec, [Message(role="user", content=PROMPT)], params={"user": BENCH_USER})
        assert await skill.build_prompt(ctx), "the seeded documents should be retrieved"
        try:
            for label, fn in _cases(skill, ctx):
                wall, cpu, calls = await measure(fn, seconds)
                rows.append([name, label, round(wall), round(cpu), calls])
        finally:
            await skill.stop()
    return rows


@contextlib.contextmanager
def milvus_server() -> Iterator[str]:
    """``python -m milvus_lite server`` on a free loopback port, stopped on the way out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(run_dir() / "milvus-server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(run_dir() / "server-data"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the milvus_lite server did not start (see {log.name})")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m bench.targets_vector", (__doc__ or "").split("\n\n")[0], list(VECTOR_TARGETS))
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per in-process case (default 2)")
    args = parser.parse_args(argv)
    from .report import format_table

    try:
        with contextlib.ExitStack() as stack:
            if any(name.startswith("vector-server") for name in args.targets):
                _SERVER["uri"] = stack.enter_context(milvus_server())
            backends = [b for b, t in (("milvus-lite", "vector-lite"), ("milvus-server", "vector-server"))
                        if any(n.startswith(t) for n in args.targets)]
            rows = asyncio.run(micro(0.3 if args.quick else args.seconds, backends))
            print("vector_memory, in-process: the skill's own calls, no HTTP, hashing embedder "
                  "(median of 20-call batches; cpu: this process only)\n")
            print(format_table(["backend", "operation", "wall us", "cpu us", "calls"], rows))
            if args.load:
                prepare(args.targets)
                print("\nunder load: robutler-kernel serve, scripted/echo, with and without vector memory\n")
                print(run_targets(args, VECTOR_TARGETS, VECTOR_BASELINES))
    finally:
        _SERVER.clear()
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

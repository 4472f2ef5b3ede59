"""Milvus through pymilvus' synchronous ``MilvusClient``, run in worker threads.

A local path ending in ``.db`` is milvus-lite (embedded, in this process); an
``http://host:19530`` URI is a Milvus server. The collection (schema, vector index,
scope index) is created on first use, with the dimension of the first vectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from robutler_specs import ServiceUnavailable

from .config import VectorConfig
from .scope import Scope

T = TypeVar("T")
log = logging.getLogger("robutler.plugins.vector")

#: Filters compare only with hex strings (scope digests, document ids): they need no
#: escaping, so nothing a user sends can change a filter expression.
_HEX = re.compile(r"^[0-9a-f]{1,64}$")

OUTPUT_FIELDS = ["text", "metadata", "created_ms"]

# milvus-lite runs one server per data directory per process; it is released when the
# last skill using it stops, so the directory is unlocked for other processes.
_lite_users: dict[str, int] = {}
_lite_lock = threading.Lock()


class _LiteWrites:
    """Per milvus-lite directory: writes one at a time (its engine does not support
    concurrent writes to a collection), and a count of inserts since the last flush."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inserts = 0


_lite_writes: dict[str, _LiteWrites] = {}


def hex_literal(value: str) -> str:
    """``value`` as a filter string literal; only hex is accepted."""
    if not _HEX.match(value):
        raise ValueError(f"not a hex string: {value!r}")
    return f'"{value}"'


def describe_uri(uri: str) -> str:
    """The URI without credentials (for errors and health checks)."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the document, its metadata and its similarity."""

    id: str
    text: str
    metadata: dict[str, Any]
    score: float

    def as_dict(self) -> dict[str, Any]:
        """The hit as the model sees it."""
        return {"id": self.id, "score": round(self.score, 4), "text": self.text, "metadata": self.metadata}


class MilvusStore:
    """One client per skill instance, guarded like the long-term memory backends: opened
    at start (or on first use when Milvus was down, at most once per ``retry_interval``),
    every call bounded by ``timeout``, every failure a 503 naming the URI setting.

    :param config: the skill's config.
    """

    def __init__(self, config: VectorConfig) -> None:
        self.config = config
        self.kind = "milvus" if config.is_remote else "milvus-lite"
        self.label = describe_uri(config.uri)
        self._client: Any = None
        self._dimension: int | None = None
        self._embedder: str | None = None
        self._lock = asyncio.Lock()
        self._ensure_lock = asyncio.Lock()
        self._last_attempt = float("-inf")
        self._last_error: str | None = None
        self._lite_path: str | None = None

    @property
    def name(self) -> str:
        """The health check name."""
        return f"vector_memory:{self.kind}:{self.label}"

    def unavailable(self, reason: str) -> ServiceUnavailable:
        """The 503 for this backend."""
        return ServiceUnavailable(
            f"vector memory backend {self.kind} ({self.label}, collection {self.config.collection}) "
            f"is unavailable: {reason}; check skills.vector_memory.uri",
            code="memory_backend_unavailable",
            plugin="vector_memory",
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect now; a failure is logged and retried on use."""
        try:
            await self._connect()
        except ServiceUnavailable as exc:
            log.error("%s (will retry on use)", exc.message)

    async def stop(self) -> None:
        """Close the client (and the milvus-lite server when this was its last user)."""
        async with self._lock:
            client, self._client = self._client, None
            self._dimension = None
            if client is not None:
                await asyncio.to_thread(client.close)
            if self._lite_path is not None:
                await asyncio.to_thread(_release_lite, self._lite_path)
                self._lite_path = None

    async def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() - self._last_attempt < self.config.retry_interval and self._last_error:
                raise self.unavailable(self._last_error)
            # pymilvus takes seconds to import: not part of the time Milvus has to answer
            await asyncio.to_thread(importlib.import_module, "pymilvus")
            self._last_attempt = time.monotonic()
            try:
                async with asyncio.timeout(self.config.timeout):
                    self._client = await asyncio.to_thread(self._open_client)
            except TimeoutError:
                self._last_error = f"it did not answer within {self.config.timeout:g} s"
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                if self.kind == "milvus-lite":
                    self._last_error += (
                        " (milvus-lite needs a writable directory and serves one process at a "
                        "time: is another process using this file?)"
                    )
            else:
                self._last_error = None
                return self._client
            raise self.unavailable(self._last_error)

    def _open_client(self) -> Any:
        from pymilvus import MilvusClient  # imported on use: discovering the plugin stays cheap

        config = self.config
        kwargs: dict[str, Any] = {"timeout": config.timeout}
        if config.token:
            kwargs["token"] = config.token
        if config.db_name:
            kwargs["db_name"] = config.db_name
        if config.is_remote:
            client = MilvusClient(config.uri, **kwargs)
            client.list_collections(timeout=config.timeout)  # fail now, not on first use
            return client
        path = str(Path(config.uri).expanduser().resolve())
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with _lite_lock:
            client = MilvusClient(path, **kwargs)
            _lite_users[path] = _lite_users.get(path, 0) + 1
        self._lite_path = path
        return client

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        client = await self._connect()
        try:
            async with asyncio.timeout(self.config.timeout):
                return await asyncio.to_thread(functools.partial(fn, client, *args, **kwargs))
        except TimeoutError:
            raise self.unavailable(f"it did not answer within {self.config.timeout:g} s") from None
        except ServiceUnavailable:
            raise
        except Exception as exc:
            self._dimension = None  # the collection may be gone: check it again next time
            raise self.unavailable(f"{type(exc).__name__}: {exc}") from exc

    # -- the collection ----------------------------------------------------------------------

    async def ensure(self, dimension: int, embedder: str) -> None:
        """Create the collection for ``dimension``-sized vectors if it does not exist, load
        it, and refuse vectors of another size than the collection holds."""
        if self._dimension == dimension and self._embedder == embedder:
            return
        async with self._ensure_lock:  # the first requests arrive together: one creates
            if self._dimension == dimension and self._embedder == embedder:
                return
            existing = await self._call(_ensure_collection, self.config, dimension)
            if existing != dimension:
                raise self.unavailable(
                    f"collection {self.config.collection} holds {existing}-dimensional vectors but the "
                    f"embedder ({embedder}) makes {dimension}-dimensional ones; set "
                    "skills.vector_memory.collection to a new name (or go back to the embedder "
                    "that filled it: skills.vector_memory.embedder / embedding_model)"
                )
            self._dimension, self._embedder = dimension, embedder

    # -- documents ---------------------------------------------------------------------------

    async def insert(self, scope: Scope, doc_id: str, vector: list[float], text: str, metadata: dict[str, Any]) -> None:
        """Insert one document (one row: it is stored whole or not at all)."""
        row = {
            "id": doc_id, "vector": vector, "scope": scope.key, "namespace": scope.namespace,
            "user": scope.user, "text": text, "metadata": metadata, "created_ms": int(time.time() * 1000),
        }
        config = self.config

        def run(client: Any) -> None:
            with self._writing() as writes:
                client.insert(config.collection, [row], timeout=config.timeout)
                if writes is not None and config.lite_flush_every:
                    writes.inserts += 1
                    # milvus-lite keeps new rows in a memtable that every search copies until
                    # it holds 128 MB: flushing it now and then keeps searches fast.
                    if writes.inserts >= config.lite_flush_every:
                        client.flush(config.collection, timeout=config.timeout)
                        writes.inserts = 0

        await self._call(run)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_LiteWrites | None]:
        """Hold the milvus-lite write lock of this directory (nothing for a server)."""
        if self._lite_path is None:
            yield None
            return
        with _lite_lock:
            writes = _lite_writes.setdefault(self._lite_path, _LiteWrites())
        with writes.lock:
            yield writes

    async def flush(self) -> None:
        """Seal what was inserted (Milvus flushes by itself; this is for bulk loads)."""
        await self._call(lambda c: c.flush(self.config.collection, timeout=self.config.timeout))

    async def search(self, scope: Scope, vector: list[float], limit: int) -> list[Hit]:
        """The ``limit`` nearest documents of ``scope``, most similar first."""
        config = self.config

        def run(client: Any) -> list[Hit]:
            results = client.search(
                config.collection, data=[vector], limit=limit,
                filter=f"scope == {hex_literal(scope.key)}", output_fields=OUTPUT_FIELDS,
                search_params={"metric_type": config.metric}, timeout=config.timeout,
            )
            hits = []
            for hit in results[0] if results else []:
                entity = hit.get("entity", {})
                hits.append(Hit(str(hit["id"]), entity.get("text", ""), entity.get("metadata") or {}, float(hit["distance"])))
            return sorted(hits, key=lambda h: -h.score)

        return await self._call(run)

    async def delete(self, scope: Scope, doc_id: str) -> bool:
        """Delete a document of ``scope``; whether it existed (another user's id is "no")."""
        if not _HEX.match(doc_id):
            return False
        config = self.config
        where = f"scope == {hex_literal(scope.key)} and id == {hex_literal(doc_id)}"

        def run(client: Any) -> bool:
            with self._writing():
                found = client.query(config.collection, filter=where, output_fields=["id"], timeout=config.timeout)
                if not found:
                    return False
                client.delete(config.collection, filter=where, timeout=config.timeout)
                return True

        return await self._call(run)

    async def check(self) -> dict[str, Any]:
        """The health check: list the collections."""
        names = await self._call(lambda c: c.list_collections(timeout=self.config.timeout))
        return {"backend": self.kind, "uri": self.label, "collection_exists": self.config.collection in names}


def _ensure_collection(client: Any, config: VectorConfig, dimension: int) -> int:
    """Create (if missing) and load the collection; the dimension it holds."""
    from pymilvus import DataType, MilvusClient

    name = config.collection
    if not client.has_collection(name, timeout=config.timeout):
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        # the partition key groups each user's rows (multi-tenancy, as Milvus advises)
        schema.add_field("scope", DataType.VARCHAR, max_length=64, is_partition_key=True)
        schema.add_field("namespace", DataType.VARCHAR, max_length=1024)
        schema.add_field("user", DataType.VARCHAR, max_length=1024)
        schema.add_field("text", DataType.VARCHAR, max_length=65535)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("created_ms", DataType.INT64)
        index = client.prepare_index_params()
        index.add_index(field_name="vector", index_type=config.index_type, metric_type=config.metric)
        index.add_index(field_name="scope", index_type="INVERTED")
        try:
            client.create_collection(
                name, schema=schema, index_params=index, consistency_level="Strong", timeout=config.timeout
            )
        except Exception:
            if not client.has_collection(name, timeout=config.timeout):  # not a lost race with a peer
                raise
    described = client.describe_collection(name, timeout=config.timeout)
    dims = [f.get("params", {}).get("dim") for f in described["fields"] if f["name"] == "vector"]
    state = client.get_load_state(name, timeout=config.timeout)
    if "Loaded" not in str(state.get("state")):
        client.load_collection(name, timeout=config.timeout)
    return int(dims[0]) if dims and dims[0] else 0


def _release_lite(path: str) -> None:
    with _lite_lock:
        _lite_users[path] = _lite_users.get(path, 1) - 1
        if _lite_users[path] > 0:
            return
        del _lite_users[path]
        _lite_writes.pop(path, None)
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # another milvus-lite generation: it cleans up at exit
        return
    release = getattr(server_manager_instance, "release_server", None)
    if release is not None:
        release(path)

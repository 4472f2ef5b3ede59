"""The skill's configuration (``agents.<agent>.skills.vector_memory``), validated by msgspec."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

#: Milvus collection names: a letter or underscore, then letters, digits, underscores.
COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
USER_SOURCES = ("identity", "param")
_HEADER_SOURCE = re.compile(r"^header:[a-z0-9-]+$")
REMOTE_SCHEMES = ("http://", "https://", "tcp://", "unix:")


class RetrieveConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Automatic retrieval: documents similar to the last user message, in the prompt.

    :ivar enabled: search on every request and add the hits to the system prompt.
    :ivar top_k: documents at most.
    :ivar min_score: documents scoring lower (cosine similarity) are left out.
    :ivar max_chars: cap on the injected text.
    """

    enabled: bool = False
    top_k: int = 3
    min_score: float = 0.3
    max_chars: int = 4000

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError("retrieve.top_k must be at least 1")
        if not -1.0 <= self.min_score <= 1.0:
            raise ValueError("retrieve.min_score is a similarity between -1 and 1")
        if self.max_chars < 100:
            raise ValueError("retrieve.max_chars must be at least 100")


class VectorConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Config of ``vector_memory``; every key and its default is in ``docs/plugins/vector.md``.

    :ivar uri: a local path ending in ``.db`` (milvus-lite, embedded) or a Milvus server
        (``http://host:19530``).
    :ivar token: the server's token (``user:password`` or an API key); none for milvus-lite.
    :ivar db_name: the server's database; default the server's default.
    :ivar collection: the collection (one for every agent and user using this uri; rows
        carry their agent and user).
    :ivar namespace: whose documents these are, with the user; default the agent's name.
    :ivar user_from: where the user id comes from (as in long-term memory).
    :ivar embedder: ``auto`` (a ``robutler_embed`` plugin if one answers, else the
        hashing embedder), ``provider`` (a plugin must answer) or ``hashing``.
    :ivar embedding_model: the ``model`` passed to ``robutler_embed``
        (``"openai/text-embedding-3-small"``); ``None`` for the provider's default.
    :ivar hash_dimensions: dimensions of the hashing embedder.
    :ivar metric: ``COSINE`` or ``IP`` (inner product; equal for unit vectors).
    :ivar index_type: the vector index (``AUTOINDEX`` lets Milvus choose).
    :ivar retrieve: automatic retrieval settings.
    :ivar max_top_k: the most results one search may ask for.
    :ivar max_document_chars: longest document accepted.
    :ivar max_metadata_bytes: largest metadata accepted, as JSON.
    :ivar lite_flush_every: milvus-lite only: flush after this many inserts (0: never),
        so searches do not slow down as unflushed documents pile up.
    :ivar timeout: seconds any one Milvus call (and connecting) may take.
    :ivar retry_interval: seconds between attempts to reach a Milvus that was down.
    """

    uri: str = "./robutler-vector.db"
    token: str | None = None
    db_name: str | None = None
    collection: str = "robutler_vector_memory"
    namespace: str | None = None
    user_from: list[str] = msgspec.field(default_factory=lambda: list(USER_SOURCES))
    embedder: Literal["auto", "provider", "hashing"] = "auto"
    embedding_model: str | None = None
    hash_dimensions: int = 256
    metric: Literal["COSINE", "IP"] = "COSINE"
    index_type: str = "AUTOINDEX"
    retrieve: RetrieveConfig = msgspec.field(default_factory=RetrieveConfig)
    max_top_k: int = 20
    max_document_chars: int = 8000
    max_metadata_bytes: int = 4096
    lite_flush_every: int = 128
    timeout: float = 10.0
    retry_interval: float = 1.0

    def __post_init__(self) -> None:
        if not self.is_remote and not self.uri.endswith(".db"):
            raise ValueError(
                f"uri {self.uri!r}: a milvus-lite file must end in '.db'; a server is "
                "'http://host:19530'"
            )
        if not COLLECTION_NAME.match(self.collection):
            raise ValueError(f"collection {self.collection!r}: letters, digits and _ only, not starting with a digit")
        bad = [s for s in self.user_from if s not in USER_SOURCES and not _HEADER_SOURCE.match(s)]
        if bad or not self.user_from:
            raise ValueError(
                f"user_from {self.user_from!r}: each entry is 'identity', 'param' or "
                "'header:<lower-case-name>'"
            )
        if not 8 <= self.hash_dimensions <= 32768:
            raise ValueError("hash_dimensions must be between 8 and 32768")
        # Milvus VARCHAR is at most 65535 bytes; 4 bytes per character in the worst case.
        if not 1 <= self.max_document_chars <= 16000:
            raise ValueError("max_document_chars must be between 1 and 16000")
        if self.lite_flush_every < 0:
            raise ValueError("lite_flush_every must be 0 (never) or more")
        if self.max_top_k < 1 or self.max_metadata_bytes < 2:
            raise ValueError("max_top_k must be at least 1 and max_metadata_bytes at least 2")
        if self.timeout <= 0 or self.retry_interval < 0:
            raise ValueError("timeout must be positive and retry_interval not negative")

    @property
    def is_remote(self) -> bool:
        """Whether ``uri`` names a Milvus server (not a milvus-lite file)."""
        return self.uri.startswith(REMOTE_SCHEMES)

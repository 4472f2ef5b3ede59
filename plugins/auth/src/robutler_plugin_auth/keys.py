"""API keys: hashed at load, compared in constant time, each mapped to an identity.

Why SHA-256 and not bcrypt/scrypt/argon2: those slow hashes exist to protect *low-entropy*
secrets (passwords) against offline guessing. An API key is a random secret of 128 bits or
more, so a single SHA-256 is already infeasible to invert, and a slow hash would add
milliseconds of CPU to every request (a denial-of-service lever) for no gain. This is what
GitHub, Stripe and most API gateways do. Plaintext keys are required to be at least
:data:`MIN_KEY_LENGTH` characters so that a configured key has that entropy to begin with.

How a key is found: the configured digests are indexed by their first 8 bytes, and the
candidates under the presented key's prefix (almost always one) are confirmed with
:func:`hmac.compare_digest` on the full 32-byte digest. The index makes the lookup O(1) (a
linear constant-time scan costs 0.6 ms per request at 10,000 keys, see ``docs/plugins/auth.md``),
and it leaks nothing worth having: what it is keyed by is a digest of a random secret,
Python hashes it with a per-process random key before probing, and the final equality
decision is the constant-time comparison. Timing can tell at most whether a key exists,
which the 401 says anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from robutler_specs import ConfigError

from .config import ApiKeyConfig

#: How many leading digest bytes index the keys (candidates are then compared in full).
PREFIX_BYTES = 8

#: The shortest plaintext key accepted (``secrets.token_urlsafe(24)`` gives 32).
MIN_KEY_LENGTH = 20

_HASH_RE = re.compile(r"sha256:([0-9a-fA-F]{64})")
_KEY_RE = re.compile(r"[\x21-\x7e]+")
_GENERATE = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def hash_key(key: str) -> str:
    """The ``sha256:<hex>`` form of ``key``, as ``key_hash`` takes it."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    """One configured key, as kept in memory: its digest and identity, never the key.

    :ivar digest: the 32-byte SHA-256 of the key.
    :ivar user_id: who it belongs to.
    :ivar scopes: the scopes it grants.
    :ivar name: its label, if any.
    """

    digest: bytes
    user_id: str
    scopes: tuple[str, ...]
    name: str | None = None

    @property
    def key_id(self) -> str:
        """A short, non-secret identifier for logs: the first 12 hex digits of the digest."""
        return self.digest.hex()[:12]


class KeyStore:
    """The configured API keys of one agent.

    :param entries: the keys, already hashed.
    """

    def __init__(self, entries: Iterable[KeyEntry] = ()) -> None:
        self._entries: tuple[KeyEntry, ...] = tuple(entries)
        self._index: dict[bytes, list[KeyEntry]] = {}
        for entry in self._entries:
            self._index.setdefault(entry.digest[:PREFIX_BYTES], []).append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        """The entries (digests and identities)."""
        return self._entries

    def lookup(self, presented: str) -> KeyEntry | None:
        """The entry whose key is ``presented``, or ``None``. The full digests are
        compared with :func:`hmac.compare_digest`, every candidate, without stopping early."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for entry in self._index.get(digest[:PREFIX_BYTES], ()):
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        return found

    @classmethod
    def from_config(
        cls, configs: Iterable[ApiKeyConfig], *, where: str, env: Mapping[str, str] | None = None
    ) -> KeyStore:
        """Hash and check the configured keys.

        :param where: the config path for errors (``agents.bot.skills.auth.api_keys``).
        :param env: where ``key_env`` is read (default ``os.environ``).
        :raises ConfigError: a key is missing, short, malformed or configured twice.
        """
        env = os.environ if env is None else env
        entries: list[KeyEntry] = []
        seen: dict[bytes, int] = {}
        for index, cfg in enumerate(configs):
            here = f"{where}[{index}]"
            digest = _digest(cfg, here, env)
            if digest in seen:
                raise ConfigError(f"{here}: the same key is configured as {where}[{seen[digest]}] too; remove one")
            seen[digest] = index
            scopes = tuple(dict.fromkeys(["all", *cfg.scopes]))
            entries.append(KeyEntry(digest, cfg.user_id, scopes, cfg.name))
        return cls(entries)


def _digest(cfg: ApiKeyConfig, here: str, env: Mapping[str, str]) -> bytes:
    given = [n for n in ("key", "key_env", "key_hash") if getattr(cfg, n) is not None]
    if len(given) != 1:
        raise ConfigError(
            f"{here}: give exactly one of key, key_env or key_hash"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    if cfg.key_hash is not None:
        match = _HASH_RE.fullmatch(cfg.key_hash.strip())
        if match is None:
            raise ConfigError(
                f"{here}.key_hash: expected 'sha256:' and 64 hex digits; compute it with: "
                "python -c 'import hashlib,sys; print(\"sha256:\" + hashlib.sha256(sys.argv[1].encode()).hexdigest())' KEY"
            )
        return bytes.fromhex(match.group(1))
    if cfg.key_env is not None:
        if cfg.key_env not in env:
            raise ConfigError(f"{here}.key_env: environment variable {cfg.key_env!r} is not set")
        key, field = env[cfg.key_env], f"{here}.key_env ({cfg.key_env})"
    else:
        assert cfg.key is not None
        key, field = cfg.key, f"{here}.key"
    # Never put the key itself in an error message: it ends up in logs.
    if not _KEY_RE.fullmatch(key):
        raise ConfigError(f"{field}: a key must be visible ASCII without spaces (it travels in a header); {_GENERATE}")
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"{field}: the key is {len(key)} characters; at least {MIN_KEY_LENGTH} are needed "
            f"(it must be a random secret, not a password); {_GENERATE}"
        )
    return hashlib.sha256(key.encode()).digest()


__all__ = ["MIN_KEY_LENGTH", "KeyEntry", "KeyStore", "hash_key"]

"""The ``auth`` skill's configuration (``agents.<agent>.skills.auth``), validated by msgspec.

Only the shape is checked here; what needs more than a type (a key's length, a PEM that
parses, an algorithm that fits its key) is checked when the skill is built, by
:mod:`.keys` and :mod:`.jwt_verifier`, with errors naming the agent and the key.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

#: A scope a caller may hold, lowest first (see ``robutler_specs.SCOPES``).
ScopeName = Literal["all", "owner", "admin"]


class ApiKeyConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One API key and the identity it stands for.

    Exactly one of ``key``, ``key_env`` or ``key_hash`` gives the key:

    :ivar key: the key itself (usually ``"${MY_KEY}"``); hashed at load, never kept.
    :ivar key_env: the name of an environment variable holding the key; read and hashed at
        load, so the plaintext never enters the kernel's config at all.
    :ivar key_hash: ``"sha256:<64 hex digits>"``, the SHA-256 of the key (no plaintext anywhere).
    :ivar user_id: who the key belongs to (``ctx.identity.user_id``).
    :ivar scopes: what the key may do: ``all``, ``owner``, ``admin``.
    :ivar name: a label for logs and audit (``ctx.identity.attributes["key_name"]``).
    """

    user_id: Annotated[str, msgspec.Meta(min_length=1)]
    key: str | None = None
    key_env: str | None = None
    key_hash: str | None = None
    scopes: list[ScopeName] = msgspec.field(default_factory=lambda: ["all"])
    name: str | None = None


class JwtConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """JWT bearer tokens (``jwt:``).

    :ivar secret: the shared HMAC secret for HS256/384/512 (at least 32 characters).
    :ivar public_key: a PEM public key (RSA, EC or Ed25519) for RS256 and friends.
    :ivar public_key_file: a path to such a PEM file (instead of ``public_key``).
    :ivar algorithms: accepted ``alg`` values; default ``HS256`` with a secret and ``RS256``
        with a public key. ``none`` is never accepted.
    :ivar audience: the ``aud`` this agent requires (one value or a list of accepted ones).
    :ivar issuer: the ``iss`` this agent requires (one value or a list of accepted ones).
    :ivar leeway: seconds of clock skew tolerated for ``exp``, ``nbf`` and ``iat``.
    :ivar scopes_claim: the claim holding the caller's scopes: a space-separated string
        (OAuth ``scope``) or a list of strings.
    :ivar user_claim: the claim holding the user id.
    """

    secret: str | None = None
    public_key: str | None = None
    public_key_file: str | None = None
    algorithms: list[str] | None = None
    audience: str | list[str] | None = None
    issuer: str | list[str] | None = None
    leeway: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    scopes_claim: str = "scope"
    user_claim: str = "sub"


class AuthConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``auth`` skill (``agents.<agent>.skills.auth``).

    :ivar api_keys: the accepted API keys.
    :ivar jwt: JWT bearer-token verification, or ``None`` for none.
    :ivar allow_anonymous: let callers without credentials in (as ``user_id: null``,
        scope ``all``). Wrong credentials are refused even then.
    :ivar required_scope: the scope needed to use the agent at all.
    :ivar realm: the realm named in ``WWW-Authenticate``.
    :ivar portal_url: a portal that validates tokens this agent does not know itself
        (``GET {portal_url}/api/auth/validate``), or ``None``.
    :ivar portal_timeout: seconds one portal call may take.
    :ivar portal_cache_ttl: seconds a portal answer is reused for the same token.
    :ivar portal_cache_size: how many tokens' answers are kept.
    """

    api_keys: list[ApiKeyConfig] = []
    jwt: JwtConfig | None = None
    allow_anonymous: bool = False
    required_scope: ScopeName = "all"
    realm: str = "robutler"
    portal_url: str | None = None
    portal_timeout: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    portal_cache_ttl: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    portal_cache_size: Annotated[int, msgspec.Meta(ge=0)] = 10_000


__all__ = ["ApiKeyConfig", "AuthConfig", "JwtConfig", "ScopeName"]

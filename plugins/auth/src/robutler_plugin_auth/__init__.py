"""The ``auth`` skill: API keys, JWT bearer tokens, an optional portal, and scopes.

``skills: {auth: {api_keys: [...], jwt: {...}, allow_anonymous: false, required_scope: all}}``;
every setting, default and decision is in ``docs/plugins/auth.md``. The skill sets
``ctx.identity`` (a ``robutler_specs.Identity``) in ``on_connection``; other skills (payments)
read it.
"""

from __future__ import annotations

from robutler_specs import hookimpl

from .config import ApiKeyConfig, AuthConfig, JwtConfig
from .headers import bearer, challenge, credentials
from .keys import KeyEntry, KeyStore, hash_key
from .skill import AuthSkill

__all__ = [
    "ApiKeyConfig",
    "AuthConfig",
    "AuthSkill",
    "JwtConfig",
    "KeyEntry",
    "KeyStore",
    "bearer",
    "challenge",
    "credentials",
    "hash_key",
]


@hookimpl
def robutler_skills() -> list[type[AuthSkill]]:
    """The auth skill."""
    return [AuthSkill]

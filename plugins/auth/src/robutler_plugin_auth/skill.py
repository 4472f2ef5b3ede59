"""The ``auth`` skill: who is calling, and may they use this agent.

In ``on_connection`` (priority 5: before payments, memory and everything else) it reads
the caller's credential, sets ``ctx.identity`` and refuses the request with a 401 (no or bad
credential) or a 403 (scope too low). The kernel then lists and runs only the tools and
``@prompt`` fragments the identity's scopes allow.

It fails closed: an unexpected error anywhere in the check refuses the request with a 401
(the cause goes to the log, not to the caller).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from robutler_specs import (
    SCOPES,
    AgentSpec,
    Identity,
    RequestContext,
    RequestError,
    Skill,
    hookimpl,
)

from .config import AuthConfig
from .headers import HOW_TO, credentials, forbidden, unauthorized
from .jwt_verifier import JwtVerifier, looks_like_jwt
from .keys import KeyStore
from .portal import Portal

log = logging.getLogger("robutler.auth")


def _ordered(scopes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``all`` first, then the known scopes lowest to highest, without repeats."""
    present = set(scopes) | {"all"}
    return tuple(s for s in SCOPES if s in present)


class AuthSkill(Skill):
    """API keys, JWT bearer tokens and an optional portal; ``all``/``owner``/``admin`` scopes.

    Sets ``ctx.identity`` to ``Identity(user_id, scopes, source, attributes)`` with
    ``source`` one of ``"api_key"``, ``"jwt"``, ``"portal"`` or ``"anonymous"``.
    """

    name = "auth"
    priority = 5
    Config = AuthConfig
    description = "API keys and JWT bearer tokens; owner/admin/all scopes"

    def __init__(self, config: AuthConfig, agent: AgentSpec) -> None:
        where = f"agents.{agent.name}.skills.{self.name}"
        #: The configured keys, as SHA-256 digests only.
        self.keys = KeyStore.from_config(config.api_keys, where=f"{where}.api_keys")
        self.jwt = JwtVerifier(config.jwt, where=f"{where}.jwt", realm=config.realm) if config.jwt else None
        self.portal = (
            Portal(
                config.portal_url,
                timeout=config.portal_timeout,
                ttl=config.portal_cache_ttl,
                size=config.portal_cache_size,
                realm=config.realm,
            )
            if config.portal_url
            else None
        )
        # The plaintext keys are hashed; keep only the hashes, here and in the agent's
        # raw config, so no later dump, log or `repr` of either shows a key.
        hashed = [
            msgspec.structs.replace(cfg, key=None, key_env=None, key_hash="sha256:" + entry.digest.hex())
            for cfg, entry in zip(config.api_keys, self.keys.entries, strict=True)
        ]
        config = msgspec.structs.replace(config, api_keys=hashed)
        super().__init__(config, agent)
        raw = agent.skills.get(self.name)
        if isinstance(raw, dict) and raw.get("api_keys"):
            agent.skills[self.name] = {**raw, "api_keys": msgspec.to_builtins(hashed)}
        if not self.methods and not config.allow_anonymous:
            log.warning(
                "%s: no api_keys, jwt or portal_url, and allow_anonymous is false: every request "
                "to agent %r will be refused with 401",
                where,
                agent.name,
            )

    @property
    def methods(self) -> list[str]:
        """The credential kinds this agent accepts."""
        return [
            method
            for method, on in (("api_key", bool(self.keys)), ("jwt", self.jwt is not None), ("portal", self.portal is not None))
            if on
        ]

    # -- the check -------------------------------------------------------------------------

    @hookimpl
    async def on_connection(self, ctx: RequestContext) -> None:
        """Authenticate the caller, set ``ctx.identity``, enforce ``required_scope``."""
        try:
            identity = await self.authenticate(ctx.headers, ctx.agent)
            self.require(identity, ctx.agent)
        except RequestError as exc:
            log.info("agent %r refused a request (%s %s): %s", ctx.agent.name, exc.status, exc.code, exc.message)
            raise
        except Exception:
            # Fail closed: whatever broke, the request does not get through.
            log.exception("agent %r: the auth check failed unexpectedly; request refused", ctx.agent.name)
            raise unauthorized(
                "authentication could not be completed, so the request was refused; retry, "
                "and tell the agent's operator if it keeps happening (the server log has the cause)",
                realm=self.config.realm,
                code="auth_error",
            ) from None
        ctx.identity = identity

    async def authenticate(self, headers: Mapping[str, str], agent: AgentSpec) -> Identity:
        """The identity of the caller whose request has ``headers`` (lower-case names).

        :raises Unauthorized: missing (when anonymous callers are not allowed) or bad credentials.
        :raises ServiceUnavailable: the portal is needed and does not answer.
        """
        realm = self.config.realm
        token = credentials(headers, realm)
        if token is None:
            if self.config.allow_anonymous:
                return Identity(user_id=None, scopes=("all",), source="anonymous")
            raise unauthorized(self._needs_credentials(agent), realm=realm, code="missing_credentials", error=None)
        entry = self.keys.lookup(token)
        if entry is not None:
            attributes = {"key_id": entry.key_id} | ({"key_name": entry.name} if entry.name else {})
            return self._identity(entry.user_id, entry.scopes, "api_key", attributes, agent)
        if self.jwt is not None and looks_like_jwt(token):
            verified = self.jwt.verify(token)
            return self._identity(verified.user_id, verified.scopes, "jwt", {"claims": verified.claims}, agent)
        if self.portal is not None:
            found = await self.portal.verify(token)
            return self._identity(found.user_id, found.scopes, "portal", found.attributes, agent)
        if not self.methods:
            raise unauthorized(self._needs_credentials(agent), realm=realm)
        what = "API key or token" if self.jwt is not None else "API key"
        raise unauthorized(f"the {what} is not valid for agent {agent.name!r}; {HOW_TO}", realm=realm)

    def _identity(
        self, user_id: str, scopes: tuple[str, ...], source: str, attributes: dict[str, Any], agent: AgentSpec
    ) -> Identity:
        granted = list(scopes)
        if agent.owner is not None and user_id == agent.owner:
            granted.append("owner")
        return Identity(user_id=user_id, scopes=_ordered(granted), source=source, attributes=attributes)

    def _needs_credentials(self, agent: AgentSpec) -> str:
        if not self.methods:
            return (
                f"agent {agent.name!r} requires authentication but accepts no credentials yet; its "
                "operator must configure skills.auth (api_keys, jwt or portal_url) or set allow_anonymous: true"
            )
        return f"agent {agent.name!r} requires authentication: {HOW_TO}"

    def require(self, identity: Identity, agent: AgentSpec) -> None:
        """Refuse ``identity`` if it lacks ``required_scope``: 401 when anonymous, else 403."""
        need = self.config.required_scope
        if identity.allows(need):
            return
        if identity.user_id is None:
            raise unauthorized(
                f"agent {agent.name!r} can only be used with the {need!r} scope; anonymous callers do "
                f"not have it: {HOW_TO}",
                realm=self.config.realm,
                code="missing_credentials",
                error=None,
            )
        raise forbidden(
            f"agent {agent.name!r} can only be used with the {need!r} scope; user "
            f"{identity.user_id!r} has {', '.join(identity.scopes)}",
            realm=self.config.realm,
            scope=need,
        )

    # -- lifecycle and info ----------------------------------------------------------------

    async def stop(self) -> None:
        """Close the portal's HTTP session."""
        if self.portal is not None:
            await self.portal.close()

    def health_checks(self) -> Mapping[str, Callable[[], Awaitable[Any]]]:
        """The portal answers (when one is configured)."""
        if self.portal is None:
            return {}
        return {f"auth portal {self.portal.url}": self.portal.ping}

    def describe(self) -> dict[str, Any]:
        """How to authenticate to this agent, for ``GET /{agent}`` (never a key or secret)."""
        info: dict[str, Any] = {
            "methods": self.methods,
            "header": "Authorization: Bearer <credential>",
            "allow_anonymous": self.config.allow_anonymous,
            "required_scope": self.config.required_scope,
        }
        if self.jwt is not None:
            jwt_info: dict[str, Any] = {"algorithms": list(self.jwt.algorithms)}
            if self.jwt.config.issuer is not None:
                jwt_info["issuer"] = self.jwt.config.issuer
            if self.jwt.config.audience is not None:
                jwt_info["audience"] = self.jwt.config.audience
            info["jwt"] = jwt_info
        return info


__all__ = ["AuthSkill"]

"""JWT bearer tokens, verified with PyJWT.

The key is chosen by the token's ``alg`` among the *configured* algorithms only: an HMAC
algorithm uses the shared ``secret``, any other the public key. So a token cannot pick
``none``, nor use the public key as an HMAC secret (the classic algorithm-confusion attack);
PyJWT refuses that too. ``exp`` and the user claim are required; ``aud`` and ``iss`` are
checked when configured, and a token carrying an ``aud`` is refused when no audience is
configured (RFC 7519 4.1.3: a recipient that is not named must reject it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from robutler_specs import ConfigError, Unauthorized

from .config import JwtConfig
from .headers import unauthorized

#: Algorithms verified with the shared secret, and the shortest secret each needs
#: (RFC 7518 3.2: at least the hash size).
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
#: Algorithms verified with a public key.
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_RSA_BITS = 2048


def looks_like_jwt(token: str) -> bool:
    """Whether ``token`` has the shape of a compact JWS (three dot-separated parts)."""
    return token.count(".") == 2


@dataclass(frozen=True)
class Verified:
    """What a valid token says: the user, the scopes it claims and all its claims."""

    user_id: str
    scopes: tuple[str, ...]
    claims: dict[str, Any]


class JwtVerifier:
    """Verifies the JWTs of one agent.

    :param config: the ``jwt:`` section.
    :param where: its config path, for errors (``agents.bot.skills.auth.jwt``).
    :raises ConfigError: no key, an unreadable or weak key, or an algorithm without its key.
    """

    def __init__(self, config: JwtConfig, *, where: str, realm: str = "robutler") -> None:
        self.config = config
        self.realm = realm
        public_key = _public_key(config, where)
        algorithms = config.algorithms
        if algorithms is None:
            algorithms = (["HS256"] if config.secret else []) + (["RS256"] if public_key is not None else [])
        if not algorithms:
            raise ConfigError(
                f"{where}: give a secret (HS256) or a public_key / public_key_file (RS256) to verify tokens with"
            )
        self.algorithms: tuple[str, ...] = tuple(dict.fromkeys(algorithms))
        self._keys: dict[str, Any] = {}
        for alg in self.algorithms:
            if alg in HMAC_ALGORITHMS:
                if not config.secret:
                    raise ConfigError(f"{where}.algorithms: {alg} needs {where}.secret")
                if len(config.secret.encode()) < HMAC_ALGORITHMS[alg]:
                    raise ConfigError(
                        f"{where}.secret: {alg} needs a secret of at least {HMAC_ALGORITHMS[alg]} bytes "
                        f"(RFC 7518); generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                    )
                try:  # PyJWT refuses a secret that looks like a PEM or SSH key
                    jwt.get_algorithm_by_name(alg).prepare_key(config.secret)
                except jwt.InvalidKeyError as exc:
                    raise ConfigError(f"{where}.secret: not usable as an HMAC secret: {exc}") from None
                self._keys[alg] = config.secret
            elif alg in PUBLIC_KEY_ALGORITHMS:
                if public_key is None:
                    raise ConfigError(f"{where}.algorithms: {alg} needs {where}.public_key or public_key_file")
                try:  # the key must fit the algorithm (an RSA key cannot verify ES256)
                    jwt.get_algorithm_by_name(alg).prepare_key(public_key)
                except (jwt.InvalidKeyError, TypeError, ValueError) as exc:
                    raise ConfigError(f"{where}: the public key cannot verify {alg}: {exc}") from None
                self._keys[alg] = public_key
            else:
                known = ", ".join([*HMAC_ALGORITHMS, *sorted(PUBLIC_KEY_ALGORITHMS)])
                raise ConfigError(f"{where}.algorithms: {alg!r} is not accepted; use one of {known}")
        self._required = ["exp", config.user_claim]
        distinct = {id(k): k for k in self._keys.values()}
        self._single_key: Any = next(iter(distinct.values())) if len(distinct) == 1 else None

    def _reject(self, message: str, code: str = "invalid_token") -> Unauthorized:
        return unauthorized(message, realm=self.realm, code=code)

    def verify(self, token: str) -> Verified:
        """Check ``token``'s signature and claims.

        :raises Unauthorized: with a message saying what is wrong (expired, wrong audience...).
        """
        cfg = self.config
        if self._single_key is not None:
            # One key for every accepted algorithm: PyJWT checks `alg` against the list
            # itself, which spares parsing the header twice.
            key, algorithms = self._single_key, list(self.algorithms)
        else:
            alg = self._alg(token)
            key, algorithms = self._keys[alg], [alg]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway,
                options={"require": self._required},
            )
        except jwt.ExpiredSignatureError:
            raise self._reject(f"the token expired{_when(token)}; get a new one", "token_expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise self._reject(f"the token has no {exc.claim!r} claim, which this agent requires") from None
        except jwt.InvalidAudienceError:
            expected = cfg.audience if cfg.audience is not None else "none: configure jwt.audience"
            raise self._reject(f"the token's audience (aud) is not accepted by this agent (accepted: {expected})") from None
        except jwt.InvalidIssuerError:
            raise self._reject(f"the token's issuer (iss) is not accepted (accepted: {cfg.issuer})") from None
        except jwt.InvalidSignatureError:
            raise self._reject("the token's signature is not valid") from None
        except jwt.ImmatureSignatureError:
            raise self._reject("the token is not valid yet (nbf or iat is in the future)") from None
        except jwt.InvalidAlgorithmError:
            self._alg(token)  # raises, naming the algorithm
            raise self._reject("the token's algorithm is not accepted") from None
        except jwt.DecodeError:
            raise self._reject("the bearer token is not a well-formed JWT") from None
        except jwt.InvalidTokenError as exc:
            raise self._reject(f"the token is not valid ({type(exc).__name__})") from None
        user = claims.get(cfg.user_claim)
        if not isinstance(user, str) or not user:
            raise self._reject(f"the token's {cfg.user_claim!r} claim must be a non-empty string")
        return Verified(user, self._scopes(claims), claims)

    def _alg(self, token: str) -> str:
        """The token's ``alg`` if it is one of the accepted algorithms; else a 401 naming it."""
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise self._reject("the bearer token is not a well-formed JWT") from None
        if alg not in self._keys:
            raise self._reject(
                f"the token's algorithm {alg!r} is not accepted; accepted: {', '.join(self.algorithms)}"
            )
        return str(alg)

    def _scopes(self, claims: dict[str, Any]) -> tuple[str, ...]:
        raw = claims.get(self.config.scopes_claim)
        if raw is None:
            values: list[str] = []
        elif isinstance(raw, str):
            values = raw.split()
        elif isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            values = raw
        else:
            raise self._reject(
                f"the token's {self.config.scopes_claim!r} claim must be a space-separated string or a list of strings"
            )
        # "owner" is relative to an agent, and one token is usually good for many agents,
        # so a token cannot claim it: it is granted when the user is the agent's owner.
        # Scopes Robutler does not know ("openid", "email") are left out of the identity;
        # the claims are kept in its attributes.
        return tuple(dict.fromkeys(["all", *(v for v in values if v == "admin")]))


def _when(token: str) -> str:
    try:
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        return " at " + dt.datetime.fromtimestamp(float(exp), dt.UTC).isoformat(timespec="seconds")
    except Exception:
        return ""


def _public_key(config: JwtConfig, where: str) -> Any:
    if config.public_key and config.public_key_file:
        raise ConfigError(f"{where}: give public_key or public_key_file, not both")
    if config.public_key_file:
        try:
            pem = Path(config.public_key_file).expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}.public_key_file: cannot read {config.public_key_file!r}: {exc.strerror}") from None
        field = f"{where}.public_key_file ({config.public_key_file})"
    elif config.public_key:
        pem, field = config.public_key.encode(), f"{where}.public_key"
    else:
        return None
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{field}: not a PEM public key ('-----BEGIN PUBLIC KEY-----'): {exc}"
        ) from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"{field}: an RSA key of {key.key_size} bits is too weak; use at least {MIN_RSA_BITS}")
    return key


__all__ = ["HMAC_ALGORITHMS", "PUBLIC_KEY_ALGORITHMS", "JwtVerifier", "Verified", "looks_like_jwt"]

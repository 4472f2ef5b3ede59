"""Where outbound calls may go: the SSRF guard.

The model chooses the URL of an ``ask_agent`` call, so the URL is untrusted. A call goes
out only when:

* the URL is ``http`` or ``https`` with a host and no user name or password in it;
* the host is allowed: ``allow_hosts`` is empty, or the host matches one of its glob
  patterns, or every address it resolves to lies in one of its networks;
* every address the host resolves to is public, or is admitted for that call: with
  ``allow_private``, or when the address lies in a listed network, or the host is listed
  exactly (a pattern without wildcards). Loopback, link-local (169.254/16, fe80::/10),
  private (RFC 1918, ULA fc00::/7), shared (100.64/10), unspecified, multicast, reserved
  and other non-global addresses are not public; an IPv4-mapped IPv6 address is judged as
  the IPv4 address it carries.

The host is resolved here to check it, and again, through :class:`GuardedResolver`, when
the connection is opened: each time every address is checked, so a name that resolves to
a public address for the check and to a private one for the connection (DNS rebinding)
is refused all the same. Redirects are never followed (see ``client``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_WILDCARDS = frozenset("*?[")


class Refused(Exception):
    """An outbound URL the guard does not allow; the message says why and which setting
    would allow it."""


def special(address: IPAddress) -> str | None:
    """What makes ``address`` non-public (``"loopback"``, ``"private"``...), or ``None``
    for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return special(address.ipv4_mapped)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared (carrier-grade NAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class Target:
    """A checked URL's parts."""

    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class HostPolicy:
    """The guard's settings (``allow_hosts``, ``allow_private``), parsed once."""

    patterns: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    allow_private: bool = False

    @classmethod
    def parse(cls, allow_hosts: list[str], allow_private: bool = False) -> HostPolicy:
        """Split ``allow_hosts`` into host name patterns and networks (``10.0.0.0/8``,
        ``127.0.0.1``, ``[::1]``).

        :raises ValueError: an entry is empty.
        """
        patterns: list[str] = []
        networks: list[IPNetwork] = []
        for raw in allow_hosts:
            entry = raw.strip().lower()
            if not entry:
                raise ValueError("allow_hosts entries must not be empty")
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                patterns.append(entry.rstrip("."))
        return cls(tuple(patterns), tuple(networks), allow_private)

    @property
    def open(self) -> bool:
        """Whether any host may be called (no allowlist)."""
        return not self.patterns and not self.networks

    def _named(self, host: str) -> tuple[bool, bool]:
        """(host matches a pattern, host is listed exactly)."""
        matched = exact = False
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(host, pattern):
                matched = True
                exact = exact or not (_WILDCARDS & set(pattern))
        return matched, exact

    def _listed(self, address: IPAddress) -> bool:
        plain = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address
        return any(plain in network for network in self.networks)

    def check_url(self, url: str) -> Target:
        """The URL's scheme, host and port, after the checks that need no DNS.

        :raises Refused: not http(s), no host, credentials in the URL, a bad port.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise Refused(f"{url!r} is not an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise Refused(f"{safe_url(url)}: a URL may not carry a user name or password; configure a peer's api_key")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise Refused(f"{url!r} has no host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise Refused(f"{url!r} has an invalid port") from None
        return Target(scheme, host, port)

    def check_addresses(self, host: str, addresses: list[IPAddress]) -> None:
        """Refuse ``host`` unless it and every one of its ``addresses`` is allowed.

        :raises Refused: the host is not in ``allow_hosts``, or an address is not public
            and not admitted.
        """
        if not addresses:
            raise Refused(f"host {host!r} resolves to no address")
        matched, exact = self._named(host)
        listed = [self._listed(a) for a in addresses]
        if not self.open and not matched and not all(listed):
            raise Refused(
                f"host {host!r} is not in this agent's allow_hosts ({', '.join(self._entries())}); add it to "
                "skills.nli.allow_hosts to call agents there"
            )
        for address, in_network in zip(addresses, listed, strict=True):
            kind = special(address)
            if kind is None or self.allow_private or in_network or exact:
                continue
            shown = host if str(address) == host else f"host {host!r} resolves to {address}"
            raise Refused(
                f"{shown}, a {kind} address: calls to such addresses are refused; list the host exactly "
                "(or its network) in skills.nli.allow_hosts, or set allow_private: true, to allow it"
            )

    def _entries(self) -> list[str]:
        return [*self.patterns, *(str(n) for n in self.networks)]

    async def check(self, url: str) -> Target:
        """Check ``url`` completely: its shape, its host, and every address it resolves to.

        :raises Refused: see :meth:`check_url` and :meth:`check_addresses`.
        """
        target = self.check_url(url)
        literal = _literal(target.host)
        addresses = [literal] if literal is not None else await resolve(target.host, target.port)
        self.check_addresses(target.host, addresses)
        return target


def safe_url(url: str) -> str:
    """``url`` without user name, password, query or fragment (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def _getaddrinfo(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[Any]:
    loop = asyncio.get_running_loop()
    return await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to.

    :raises Refused: the name does not resolve.
    """
    try:
        infos = await _getaddrinfo(host, port)
    except OSError as exc:
        raise Refused(f"host {host!r} could not be resolved ({exc.strerror or exc})") from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


#: The policy of the call being made, for :class:`GuardedResolver` (the session is shared
#: by every agent of the kernel; each call sets its own agent's policy).
#: The strictest policy (any public host, no private address): the default.
STRICT = HostPolicy()
current_policy: ContextVar[HostPolicy] = ContextVar("nli_policy", default=STRICT)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for the shared session: it resolves the host when the connection
    is opened and refuses it (an ``OSError``) unless every address passes the policy of the
    call in progress (:data:`current_policy`), so what was checked is what is connected to."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses, all checked."""
        try:
            infos = await _getaddrinfo(host, port, family)
        except OSError as exc:
            raise OSError(exc.errno, f"could not resolve {host!r}: {exc.strerror or exc}") from None
        results: list[ResolveResult] = []
        addresses: list[IPAddress] = []
        for fam, _, proto, _, sockaddr in infos:
            text = str(sockaddr[0]).split("%", 1)[0]
            addresses.append(ipaddress.ip_address(text))
            results.append(
                ResolveResult(hostname=host, host=str(sockaddr[0]), port=int(sockaddr[1]), family=fam, proto=proto,
                              flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
            )
        try:
            current_policy.get().check_addresses(host.rstrip(".").lower(), addresses)
        except Refused as exc:
            raise OSError(f"refused: {exc}") from None
        return results

    async def close(self) -> None:
        """Nothing to release."""


__all__ = [
    "GuardedResolver", "HostPolicy", "Refused", "Target", "current_policy", "resolve", "safe_url", "special",
]

"""The SSRF guard on its own: URL shapes, address classes, the allowlist, the resolver that
checks again at connect time (real name resolution: ``localhost`` is a loopback name)."""

from __future__ import annotations

import ipaddress

import pytest

from robutler_plugin_nli.guard import GuardedResolver, HostPolicy, Refused, current_policy, special

DEFAULT = HostPolicy.parse([])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/agent", "loopback"),
        ("http://127.1/agent", "loopback"),                      # a short form resolves to 127.0.0.1
        ("http://10.1.2.3/agent", "private"),
        ("http://192.168.0.10/agent", "private"),
        ("http://172.16.5.4/agent", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://100.64.0.1/agent", "shared"),
        ("http://0.0.0.0:8000/agent", "unspecified"),
        ("http://224.0.0.1/agent", "multicast"),
        ("http://[::1]:8000/agent", "loopback"),
        ("http://[fd00::1]/agent", "private"),
        ("http://[fe80::1]/agent", "link-local"),
        ("http://[::ffff:127.0.0.1]/agent", "loopback"),
        ("http://localhost:8000/agent", "loopback"),             # a name that resolves to loopback
        ("http://LOCALHOST./agent", "loopback"),
    ],
)
async def test_the_default_refuses_non_public_addresses(url: str, reason: str) -> None:
    with pytest.raises(Refused, match=reason) as caught:
        await DEFAULT.check(url)
    assert "allow_hosts" in str(caught.value) and "allow_private" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/agent", "not an http"),
        ("file:///etc/passwd", "not an http"),
        ("http://user:secret@example.com/agent", "user name or password"),
        ("http:///agent", "no host"),
        ("http://example.com:99999/agent", "invalid port"),
    ],
)
async def test_malformed_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(Refused, match=why) as caught:
        await DEFAULT.check(url)
    assert "secret" not in str(caught.value)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(Refused, match="could not be resolved"):
        await DEFAULT.check("http://no-such-host.invalid/agent")


async def test_public_addresses_pass() -> None:
    target = await DEFAULT.check("https://93.184.216.34/agent")
    assert (target.scheme, target.host, target.port) == ("https", "93.184.216.34", 443)


def test_address_classes() -> None:
    assert special(ipaddress.ip_address("8.8.8.8")) is None
    assert special(ipaddress.ip_address("2606:4700::1111")) is None
    assert special(ipaddress.ip_address("::")) == "unspecified"
    assert special(ipaddress.ip_address("192.0.2.1")) is not None  # documentation range
    assert special(ipaddress.ip_address("240.0.0.1")) == "reserved"


async def test_allow_private_admits_loopback_for_allowed_hosts() -> None:
    policy = HostPolicy.parse([], allow_private=True)
    assert (await policy.check("http://127.0.0.1:9/agent")).port == 9
    assert (await policy.check("http://localhost:9/agent")).host == "localhost"


async def test_an_exact_host_or_a_network_admits_its_private_addresses_a_wildcard_does_not() -> None:
    exact = HostPolicy.parse(["localhost", "127.0.0.1", "10.0.0.0/8", "[::1]"])
    await exact.check("http://localhost:8000/a")
    await exact.check("http://127.0.0.1:8000/a")
    await exact.check("http://10.9.8.7/a")
    await exact.check("http://[::1]:8000/a")
    with pytest.raises(Refused, match="not in this agent's allow_hosts"):
        await exact.check("http://192.168.1.1/a")
    wildcard = HostPolicy.parse(["local*", "*.example.com"])
    with pytest.raises(Refused, match="loopback"):
        await wildcard.check("http://localhost:8000/a")  # matches the pattern, but a wildcard admits public addresses only


async def test_a_non_empty_allowlist_refuses_other_hosts() -> None:
    policy = HostPolicy.parse(["agents.example.com", "*.trusted.example"])
    with pytest.raises(Refused, match=r"host '93.184.216.34' is not in this agent's allow_hosts \(agents.example.com"):
        await policy.check("http://93.184.216.34/agent")
    policy.check_addresses("a.trusted.example", [ipaddress.ip_address("93.184.216.34")])
    policy.check_addresses("agents.example.com", [ipaddress.ip_address("93.184.216.34")])


async def test_every_address_of_a_name_is_checked() -> None:
    addresses = [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")]
    with pytest.raises(Refused, match=r"resolves to 10\.0\.0\.1, a private address"):
        DEFAULT.check_addresses("mixed.example.com", addresses)


async def test_the_resolver_checks_again_when_connecting() -> None:
    resolver = GuardedResolver()
    with pytest.raises(OSError, match=r"refused: .*loopback"):
        await resolver.resolve("localhost", 80)
    token = current_policy.set(HostPolicy.parse(["localhost"]))
    try:
        results = await resolver.resolve("localhost", 80)
    finally:
        current_policy.reset(token)
    assert results and all(ipaddress.ip_address(r["host"]).is_loopback for r in results)

"""Which addresses a webhook may reach: one test per blocked block, and the dev-mode switch."""

from __future__ import annotations

import ipaddress
from typing import cast

import aiohttp
import pytest

from prometora_webhooks.delivery.client import Sender
from prometora_webhooks.delivery.guard import BlockedAddress, _sockaddr_host, check_addresses
from prometora_webhooks.domain.addresses import METADATA, classify


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# Refused whatever ALLOW_PRIVATE_NETWORKS says: (address, reason).
ALWAYS_BLOCKED = [
    # cloud metadata
    ("169.254.169.254", "cloud metadata address"),
    ("fd00:ec2::254", "cloud metadata address"),
    ("169.254.170.2", "cloud metadata address"),  # AWS ECS task metadata
    ("169.254.170.23", "cloud metadata address"),  # AWS EKS Pod Identity agent
    ("fd00:ec2::23", "cloud metadata address"),  # AWS EKS Pod Identity agent (IPv6)
    # the whole blocks clouds keep instance services in, not only the famous addresses
    ("169.254.169.0", "cloud metadata address"),
    ("169.254.169.123", "cloud metadata address"),  # AWS NTP
    ("169.254.169.253", "cloud metadata address"),  # AWS DNS resolver
    ("169.254.169.255", "cloud metadata address"),
    ("169.254.170.0", "cloud metadata address"),
    ("169.254.170.255", "cloud metadata address"),
    ("fd00:ec2::253", "cloud metadata address"),  # AWS DNS resolver (IPv6)
    ("fd00:ec2::123", "cloud metadata address"),  # AWS NTP (IPv6)
    ("fd00:ec2::ffff:1", "cloud metadata address"),
    ("100.100.100.200", "cloud metadata address"),  # Alibaba
    ("168.63.129.16", "cloud metadata address"),  # Azure WireServer, looks public
    # IPv6 prefixes that tunnel to an IPv4 address nobody checked
    ("64:ff9b::a9fe:a9fe", "IPv6 translation address"),  # NAT64 of 169.254.169.254
    ("64:ff9b::7f00:1", "IPv6 translation address"),  # NAT64 of 127.0.0.1
    ("64:ff9b::808:808", "IPv6 translation address"),  # NAT64 of 8.8.8.8, refused outright
    ("64:ff9b:1::a00:1", "IPv6 translation address"),  # local-use NAT64
    ("2002:7f00:1::1", "IPv6 translation address"),  # 6to4 of 127.0.0.1
    ("2002:808:808::1", "IPv6 translation address"),  # 6to4 of 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IPv6 translation address"),  # Teredo
    ("::ffff:127.0.0.1", "IPv6 translation address"),  # IPv4-mapped
    ("::ffff:7f00:1", "IPv6 translation address"),
    ("::ffff:a9fe:a9fe", "IPv6 translation address"),
    ("::ffff:8.8.8.8", "IPv6 translation address"),
    ("::127.0.0.1", "IPv6 translation address"),  # IPv4-compatible
    ("::a00:1", "IPv6 translation address"),
    ("::ffff:0:7f00:1", "IPv6 translation address"),  # IPv4-translated
    # never a unicast destination
    ("224.0.0.1", "multicast address"),
    ("239.255.255.250", "multicast address"),
    ("ff02::1", "multicast address"),
    ("ff0e::1", "multicast address"),
    ("0.0.0.0", "unspecified address"),
    ("::", "unspecified address"),
    ("0.1.2.3", "reserved address"),  # "this network" 0/8
    ("240.0.0.1", "reserved address"),
    ("255.255.255.255", "reserved address"),
    ("100::1", "reserved address"),  # discard-only
]


@pytest.mark.parametrize(("addr", "reason"), ALWAYS_BLOCKED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_always_blocked(addr: str, reason: str, allow_private: bool) -> None:
    assert classify(ip(addr), allow_private=allow_private) == reason


# Refused by default, allowed with ALLOW_PRIVATE_NETWORKS (local development and tests).
PRIVATE = [
    ("127.0.0.1", "loopback address"),
    ("127.255.255.254", "loopback address"),
    ("::1", "loopback address"),
    ("169.254.1.1", "link-local address"),
    ("fe80::1", "link-local address"),
    ("fe80::abcd:1234", "link-local address"),
    ("10.0.0.1", "private address"),
    ("10.255.255.255", "private address"),
    ("172.16.0.1", "private address"),
    ("172.31.255.255", "private address"),
    ("192.168.0.1", "private address"),
    ("192.168.255.255", "private address"),
    ("100.64.0.1", "private address"),  # CGNAT: neither private nor global to ipaddress
    ("100.127.255.254", "private address"),
    ("192.0.0.8", "private address"),  # IETF protocol assignments
    ("192.0.2.1", "private address"),  # TEST-NET-1
    ("198.18.0.1", "private address"),  # benchmarking
    ("198.19.255.255", "private address"),
    ("198.51.100.1", "private address"),  # TEST-NET-2
    ("203.0.113.1", "private address"),  # TEST-NET-3
    ("192.88.99.1", "private address"),  # deprecated 6to4 relay anycast
    ("fc00::1", "private address"),  # ULA
    ("fd12:3456::1", "private address"),
    ("fd00:ec2:0:1::254", "private address"),  # outside AWS's fd00:ec2::/64
    ("169.254.168.254", "link-local address"),  # outside the metadata /24s
    ("169.254.171.1", "link-local address"),
    ("fec0::1", "private address"),  # deprecated site-local
    ("2001:db8::1", "private address"),  # documentation
    ("3fff::1", "private address"),  # documentation (RFC 9637)
    ("2001:2::1", "private address"),  # benchmarking
]


@pytest.mark.parametrize(("addr", "reason"), PRIVATE)
def test_private_refused_by_default(addr: str, reason: str) -> None:
    assert classify(ip(addr)) == reason
    assert classify(ip(addr), allow_private=False) == reason


@pytest.mark.parametrize(("addr", "reason"), PRIVATE)
def test_private_allowed_for_local_development(addr: str, reason: str) -> None:
    assert classify(ip(addr), allow_private=True) is None


PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "11.0.0.1",  # just outside 10/8
    "9.255.255.255",
    "172.15.255.255",  # just outside 172.16/12
    "172.32.0.1",
    "192.167.255.255",
    "192.169.0.1",
    "100.63.255.255",  # just outside CGNAT
    "100.128.0.1",
    "169.253.255.255",
    "169.255.0.1",
    "126.255.255.255",
    "128.0.0.1",
    "223.255.255.254",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450:4001:80b::200e",
    "2003::1",  # next to 6to4
    "2001:200::1",  # just outside 2001::/23 (Teredo 2001::/32, IETF assignments)
]


@pytest.mark.parametrize("addr", PUBLIC)
@pytest.mark.parametrize("allow_private", [False, True])
def test_public_addresses_allowed(addr: str, allow_private: bool) -> None:
    assert classify(ip(addr), allow_private=allow_private) is None


def test_scoped_ipv6_refused_even_in_development() -> None:
    for allow_private in (False, True):
        assert classify(ip("fe80::1%eth0"), allow_private=allow_private) == "scoped IPv6 address"
        assert classify(ip("2606:4700::1%1"), allow_private=allow_private) == (
            "scoped IPv6 address"
        )


def test_metadata_set_is_the_contracts_and_more() -> None:
    assert ip("169.254.169.254") in METADATA
    assert ip("fd00:ec2::254") in METADATA
    assert all(classify(a, allow_private=True) == "cloud metadata address" for a in METADATA)


def test_metadata_neighbours_are_ordinary_link_local() -> None:
    for addr in ("169.254.168.255", "169.254.171.0", "169.254.1.1"):
        assert classify(ip(addr)) == "link-local address"
        assert classify(ip(addr), allow_private=True) is None


# -- the resolver's check agrees with the URL rule ---------------------------------------------

SCOPED = ["fe80::1%eth0", "fe80::1%2", "fe80::abcd:1234%lo", "fd12:3456::1%eth0"]


@pytest.mark.parametrize("addr", SCOPED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_resolver_refuses_scoped_addresses_like_the_url_rule(
    addr: str, allow_private: bool
) -> None:
    """getaddrinfo/getnameinfo give link-local answers with their zone: the check keeps it, so
    a scoped address is refused in development too, exactly as a literal one is."""
    assert classify(ip(addr), allow_private=allow_private) == "scoped IPv6 address"
    with pytest.raises(BlockedAddress) as caught:
        check_addresses([addr], allow_private)
    assert caught.value.reason == "scoped IPv6 address"
    assert _check_literal(f"https://[{addr.replace('%', '%25')}]/", allow_private) == (
        "blocked: scoped IPv6 address"
    )


def test_resolver_keeps_the_scope_of_a_getaddrinfo_answer() -> None:
    assert _sockaddr_host(("fe80::1", 443, 0, 2)) == "fe80::1%2"
    assert _sockaddr_host(("fe80::1%eth0", 443, 0, 2)) == "fe80::1%eth0"
    assert _sockaddr_host(("2606:4700::1", 443, 0, 0)) == "2606:4700::1"
    assert _sockaddr_host(("8.8.8.8", 443)) == "8.8.8.8"
    with pytest.raises(BlockedAddress):
        check_addresses([_sockaddr_host(("fe80::1", 443, 0, 2))], True)


@pytest.mark.parametrize(("addr", "reason"), ALWAYS_BLOCKED + PRIVATE)
@pytest.mark.parametrize("allow_private", [False, True])
def test_resolver_and_literal_paths_give_the_same_verdict(
    addr: str, reason: str, allow_private: bool
) -> None:
    """One address, two paths (a host name resolving to it; the literal in the URL at delivery
    time): the same verdict and the same words in the delivery log."""
    expected = classify(ip(addr), allow_private=allow_private)
    try:
        check_addresses([addr], allow_private)
        by_resolver = None
    except BlockedAddress as exc:
        by_resolver = f"blocked: {exc.reason}"
    host = f"[{addr}]" if ":" in addr else addr
    literal = _check_literal(f"https://{host}/hook", allow_private)
    assert by_resolver == literal == (None if expected is None else f"blocked: {expected}")


def test_unparseable_resolver_answer_is_refused() -> None:
    with pytest.raises(BlockedAddress):
        check_addresses(["not-an-address"], True)


def _check_literal(url: str, allow_private: bool) -> str | None:
    """The verdict the delivery client reaches on a URL before any socket (no session used)."""
    sender = Sender(
        cast(aiohttp.ClientSession, None),
        timeout=1.0,
        allow_http=False,
        allow_private=allow_private,
    )
    return sender._check(url)

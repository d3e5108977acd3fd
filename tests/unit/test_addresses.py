"""Which addresses a webhook may reach: one test per blocked block, and the dev-mode switch."""

from __future__ import annotations

import ipaddress

import pytest

from prometora_webhooks.domain.addresses import METADATA, classify


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# Refused whatever ALLOW_PRIVATE_NETWORKS says: (address, reason).
ALWAYS_BLOCKED = [
    # cloud metadata
    ("169.254.169.254", "cloud metadata address"),
    ("fd00:ec2::254", "cloud metadata address"),
    ("169.254.170.2", "cloud metadata address"),  # AWS ECS task metadata
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
    ("fd00:ec2::253", "private address"),  # next to the metadata address
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
    assert classify(ip("169.254.169.253")) == "link-local address"
    assert classify(ip("169.254.169.253"), allow_private=True) is None

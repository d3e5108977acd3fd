"""Which IP addresses a webhook may be sent to.

A webhook sender POSTs to URLs its customers type in, so every address is checked before a
socket opens. ``classify`` names the reason an address is refused, or returns None.
Cloud metadata and translation prefixes (NAT64, 6to4, Teredo, IPv4-mapped/compatible) are
refused even when private networks are allowed: they reach the cloud metadata service or
tunnel to addresses that were never checked. Besides the well-known metadata addresses, the
link-local blocks clouds put their instance services in (AWS: IMDS, the DNS resolver, NTP, ECS
task metadata, EKS Pod Identity) are refused whole, so a neighbour of a known address is too.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("169.254.170.23"),  # AWS EKS Pod Identity agent
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("168.63.129.16"),  # Azure WireServer
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("fd00:ec2::23"),  # AWS EKS Pod Identity agent (IPv6)
    }
)

# Whole blocks of cloud instance services, refused like the addresses above.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.0/24",  # AWS IMDS, DNS resolver (.253), NTP (.123); GCP, Azure, OCI IMDS
        "169.254.170.0/24",  # AWS ECS task metadata (.2), EKS Pod Identity (.23)
        "fd00:ec2::/64",  # AWS IPv6 IMDS (::254), DNS (::253), NTP (::123), EKS (::23)
    )
)

_ALWAYS_BLOCKED_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local-use NAT64
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
        "::ffff:0:0/96",  # IPv4-mapped
        "::/96",  # IPv4-compatible (deprecated) and ::
        "::ffff:0:0:0/96",  # IPv4-translated
    )
)

# Inside ::/96 but not translation addresses; compared exactly (newer Pythons call
# ::ffff:127.0.0.1 "loopback" too).
_V6_LOOPBACK_OR_UNSPECIFIED = (ipaddress.IPv6Address("::1"), ipaddress.IPv6Address("::"))

_PRIVATE_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
    )
)

# Not global, but unknown to (this Python's) ipaddress predicates.
_PRIVATE_V6 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "fec0::/10",  # deprecated site-local
        "3fff::/20",  # documentation (RFC 9637)
    )
)


def classify(addr: IPAddress, *, allow_private: bool = False) -> str | None:
    """Return why ``addr`` may not be contacted, or None if it may."""
    if addr in METADATA or any(addr in n for n in METADATA_NETWORKS):
        return "cloud metadata address"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return "scoped IPv6 address"
        for net in _ALWAYS_BLOCKED_V6:
            if addr in net and addr not in _V6_LOOPBACK_OR_UNSPECIFIED:
                return "IPv6 translation address"
    if addr.is_multicast:
        return "multicast address"
    if addr.is_unspecified:
        return "unspecified address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("0.0.0.0/8"):
        return "reserved address"
    if addr.is_reserved and not addr.is_loopback:  # ::1 lies in the reserved ::/8
        return "reserved address"
    if allow_private:
        return None
    if addr.is_loopback:
        return "loopback address"
    if addr.is_link_local:
        return "link-local address"
    if isinstance(addr, ipaddress.IPv4Address) and any(addr in n for n in _PRIVATE_V4):
        return "private address"
    if isinstance(addr, ipaddress.IPv6Address) and any(addr in n for n in _PRIVATE_V6):
        return "private address"
    if addr.is_private or not addr.is_global:
        return "private address"
    return None

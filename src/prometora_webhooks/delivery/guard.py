"""SSRF guard: every address a host resolves to is checked before any socket opens.

``GuardedResolver`` plugs into aiohttp, so the connection goes to exactly the addresses that were
checked (no second lookup that DNS rebinding could answer differently), while TLS still
verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from ..domain.addresses import classify


class BlockedAddress(OSError):
    """The host resolves to an address deliveries may not reach."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"blocked: resolves to a {reason}")
        self.reason = reason


def check_addresses(addresses: list[str], allow_private: bool) -> None:
    """Refuse unless every address may be contacted.

    An address keeps its zone (``fe80::1%eth0``): a scoped address is refused as the URL rule
    refuses one, rather than passing as plain link-local once its scope is cut off."""
    for a in addresses:
        try:
            addr = ipaddress.ip_address(a)
        except ValueError:
            raise BlockedAddress("unrecognised address") from None
        reason = classify(addr, allow_private=allow_private)
        if reason is not None:
            raise BlockedAddress(reason)


def _sockaddr_host(sockaddr: Any) -> str:
    """The address of a getaddrinfo sockaddr, with its IPv6 scope id when it has one."""
    host = str(sockaddr[0])
    if len(sockaddr) >= 4 and sockaddr[3] and "%" not in host:
        return f"{host}%{sockaddr[3]}"
    return host


class GuardedResolver(AbstractResolver):
    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        check_addresses([r["host"] for r in results], self._allow_private)
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_host(
    host: str,
    allow_private: bool,
    timeout: float = 3.0,
    *,
    resolver: AbstractResolver | None = None,
) -> None:
    """At endpoint creation: refuse a host name that resolves to an internal address.

    A name that does not resolve (yet) is accepted; its deliveries fail until it does.
    ``resolver`` replaces the system's getaddrinfo (tests inject one they control).
    """
    try:
        async with asyncio.timeout(timeout):
            if resolver is None:
                loop = asyncio.get_running_loop()
                infos: list[Any] = await loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
                addresses = [_sockaddr_host(info[4]) for info in infos]
            else:
                results = await resolver.resolve(host, 443, socket.AF_UNSPEC)
                addresses = [r["host"] for r in results]
    except BlockedAddress:
        raise  # a guarding resolver already refused it
    except (OSError, TimeoutError, UnicodeError):
        return
    check_addresses(addresses, allow_private)

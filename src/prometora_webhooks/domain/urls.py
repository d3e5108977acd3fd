"""Endpoint URL validation that needs no network: shape, scheme, length and IP literals."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .addresses import IPAddress, classify
from .errors import UrlRejected

MAX_URL_LENGTH = 2048
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str  # lower-case, no trailing dot, IPv6 without brackets
    port: int
    ip: IPAddress | None  # set when the host is an IP literal


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """Parse the forms inet_aton accepts: 127.1, 0x7f.1, 017700000001, 2130706433."""
    parts = host.lower().split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    nums: list[int] = []
    for p in parts:
        if p.startswith("0x"):
            nums.append(int(p[2:], 16))
        elif p.startswith("0") and len(p) > 1:
            nums.append(int(p, 8))
        else:
            nums.append(int(p))
    *head, last = nums
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(nums)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (5 - len(nums)) + last
    return ipaddress.IPv4Address(value)


def parse_ip_host(host: str) -> IPAddress | None:
    """The address a host names literally, in any notation a resolver would accept."""
    h = host
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            return None
    return parse_ipv4_loose(h)


def check_url(url: object, *, allow_http: bool, allow_private: bool) -> CheckedUrl:
    """Validate an endpoint URL; raise ``UrlRejected`` naming the problem."""
    if not isinstance(url, str) or not url:
        raise UrlRejected("url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejected(f"url must be at most {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise UrlRejected("url must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected(f"url is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRejected("url must start with https://")
    if scheme == "http" and not allow_http:
        raise UrlRejected("url must use https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRejected("url must not contain credentials (user:pass@)")
    raw_host = parts.hostname
    if not raw_host:
        raise UrlRejected("url must have a host")
    if parts.fragment:
        raise UrlRejected("url must not contain a fragment (#...)")
    if "%" in raw_host:
        raise UrlRejected("url host must not contain a zone id or percent-encoding")
    host = raw_host.lower().rstrip(".")
    if port == 0:
        raise UrlRejected("url port must be between 1 and 65535")
    ip = parse_ip_host(host)
    if ip is None:
        if ":" in host or parts.netloc.startswith("["):
            raise UrlRejected("url host is not a valid IPv6 address")
        labels = host.split(".")
        if not all(_HOST_LABEL.match(label) for label in labels):
            raise UrlRejected("url host is not a valid host name")
        if labels[-1].isdigit():
            raise UrlRejected("url host is not a valid IP address or host name")
        internal = host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
        if internal and not allow_private:
            raise UrlRejected("url must not point at a loopback or internal host")
    else:
        reason = classify(ip, allow_private=allow_private)
        if reason is not None:
            raise UrlRejected(f"url must not point at a {reason}")
    default_port = 443 if scheme == "https" else 80
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port or default_port, ip=ip)

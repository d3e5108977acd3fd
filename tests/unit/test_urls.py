"""Endpoint URL validation without the network: shape, scheme, length and IP literals."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometora_webhooks.domain.addresses import classify
from prometora_webhooks.domain.errors import UrlRejected, ValidationFailed
from prometora_webhooks.domain.urls import (
    MAX_URL_LENGTH,
    CheckedUrl,
    check_url,
    parse_ip_host,
    parse_ipv4_loose,
)

LOOPBACK = "loopback address"
PRIVATE = "private address"
LINK_LOCAL = "link-local address"
METADATA = "cloud metadata address"
TRANSLATION = "IPv6 translation address"
UNSPECIFIED = "unspecified address"
MULTICAST = "multicast address"
RESERVED = "reserved address"
CREDENTIALS = "must not contain credentials"
CONTROL = "must not contain spaces, control characters or backslashes"
INTERNAL_NAME = "must not point at a loopback or internal host"
SCHEME = "must start with https://"
PORT = "malformed: Port"
PERCENT = "must not contain a zone id or percent-encoding"
BAD_NAME = "not a valid host name"

# (url, expected substring of the message) with allow_http=False, allow_private=False.
BAD_URLS = [
    # IPv4 loopback in every notation inet_aton accepts
    ("https://127.0.0.1/", LOOPBACK),
    ("https://127.255.255.254/", LOOPBACK),
    ("https://2130706433/", LOOPBACK),  # decimal
    ("https://0x7f000001/", LOOPBACK),  # hex
    ("https://0X7F000001/", LOOPBACK),
    ("https://0x7f.0.0.1/", LOOPBACK),
    ("https://0x7f.1/", LOOPBACK),  # mixed
    ("https://0177.0.0.1/", LOOPBACK),  # octal
    ("https://017700000001/", LOOPBACK),
    ("https://0177.1/", LOOPBACK),
    ("https://127.1/", LOOPBACK),  # short
    ("https://127.0.1/", LOOPBACK),
    ("https://127.000.000.001/", LOOPBACK),  # leading zeros are octal, still 127.0.0.1
    ("https://127.0.0.1./", LOOPBACK),  # trailing dot
    ("https://127.0.0.1:8443/x", LOOPBACK),
    # other IPv4 blocks
    ("https://012.0.0.1/", PRIVATE),  # octal 012 = 10
    ("https://10.0.0.1/", PRIVATE),
    ("https://167772161/", PRIVATE),  # 10.0.0.1 decimal
    ("https://172.16.0.1/", PRIVATE),
    ("https://172.31.255.255/", PRIVATE),
    ("https://0xac.0x10.0.1/", PRIVATE),  # 172.16.0.1 hex
    ("https://192.168.1.1/", PRIVATE),
    ("https://0300.0250.1.1/", PRIVATE),  # 192.168.1.1 octal
    ("https://100.64.0.1/", PRIVATE),  # CGNAT
    ("https://100.127.255.254/", PRIVATE),
    ("https://192.0.0.8/", PRIVATE),
    ("https://198.18.0.1/", PRIVATE),
    ("https://203.0.113.1/", PRIVATE),
    ("https://169.254.169.254/latest/meta-data/", METADATA),
    ("https://2852039166/", METADATA),  # 169.254.169.254 decimal
    ("https://0xa9fea9fe/", METADATA),
    ("https://0251.0376.0251.0376/", METADATA),
    ("https://169.254.43518/", METADATA),  # 169.254.(169*256+254)
    ("https://100.100.100.200/", METADATA),
    ("https://168.63.129.16/", METADATA),
    ("https://169.254.1.1/", LINK_LOCAL),
    ("https://0.0.0.0/", UNSPECIFIED),
    ("https://0/", UNSPECIFIED),
    ("https://0x0/", UNSPECIFIED),
    ("https://0.1.2.3/", RESERVED),
    ("https://224.0.0.1/", MULTICAST),
    ("https://239.255.255.250/", MULTICAST),
    ("https://240.0.0.1/", RESERVED),
    ("https://255.255.255.255/", RESERVED),
    ("https://1.2.3.999/", "not a valid IP address or host name"),
    ("https://4294967296/", "not a valid IP address or host name"),  # 2**32
    ("https://08.0.0.1/", "not a valid IP address or host name"),  # 8 is not octal
    # bracketed IPv6
    ("https://[::1]/", LOOPBACK),
    ("https://[0:0:0:0:0:0:0:1]/", LOOPBACK),
    ("https://[::1]:8443/", LOOPBACK),
    ("https://[::]/", UNSPECIFIED),
    ("https://[::ffff:127.0.0.1]/", TRANSLATION),
    ("https://[::ffff:7f00:1]/", TRANSLATION),
    ("https://[::ffff:a9fe:a9fe]/", TRANSLATION),
    ("https://[::ffff:10.0.0.1]/", TRANSLATION),
    ("https://[::127.0.0.1]/", TRANSLATION),  # IPv4-compatible
    ("https://[64:ff9b::a9fe:a9fe]/", TRANSLATION),  # NAT64
    ("https://[64:ff9b::7f00:1]/", TRANSLATION),
    ("https://[64:ff9b::127.0.0.1]/", TRANSLATION),
    ("https://[64:ff9b:1::a00:1]/", TRANSLATION),
    ("https://[2002:7f00:1::1]/", TRANSLATION),  # 6to4
    ("https://[2002:a9fe:a9fe::]/", TRANSLATION),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", TRANSLATION),  # Teredo
    ("https://[fd00:ec2::254]/", METADATA),
    ("https://[FD00:EC2::254]/", METADATA),
    ("https://[fd00:ec2:0:0:0:0:0:254]/", METADATA),
    ("https://[fc00::1]/", PRIVATE),
    ("https://[fd12:3456::1]/", PRIVATE),
    ("https://[fec0::1]/", PRIVATE),
    ("https://[2001:db8::1]/", PRIVATE),
    ("https://[fe80::1]/", LINK_LOCAL),
    ("https://[ff02::1]/", MULTICAST),
    ("https://[fe80::1%25eth0]/", PERCENT),  # zone id, URL-encoded
    ("https://[fe80::1%eth0]/", PERCENT),
    ("https://[::1%251]/", PERCENT),
    ("https://[::1/", "malformed"),
    ("https://[example.com]/", "malformed"),  # brackets around a name
    ("https://[127.0.0.1]/", "malformed"),
    ("https://[v1.internal]/", "not a valid IPv6 address"),  # IPvFuture
    ("https://::1/", "malformed"),
    # userinfo and parser differentials
    ("https://evil.com@127.0.0.1/", CREDENTIALS),
    ("https://127.0.0.1@evil.com/", CREDENTIALS),
    ("https://user:pass@hooks.example.com/", CREDENTIALS),
    ("https://user@hooks.example.com/", CREDENTIALS),
    ("https://:@hooks.example.com/", CREDENTIALS),
    ("https://@hooks.example.com/", CREDENTIALS),
    ("https://a@b@127.0.0.1/", CREDENTIALS),
    ("https://evil.com%40127.0.0.1/", PERCENT),
    ("https://127.0.0.1\\@evil.com/", CONTROL),
    ("https://evil.com\\@127.0.0.1/", CONTROL),
    ("https://hooks.example.com\\x/", CONTROL),
    # whitespace and control characters
    (" https://hooks.example.com/", CONTROL),
    ("https://hooks.example.com/ ", CONTROL),
    ("\x00https://hooks.example.com/", CONTROL),
    ("https://exa\tmple.com/", CONTROL),
    ("https://example.com/\r\nX-Injected: 1", CONTROL),
    ("https://example.com/\n", CONTROL),
    ("https://example.com/a b", CONTROL),
    ("https://example.com/\x7f", CONTROL),
    # names that are local by definition
    ("https://localhost/", INTERNAL_NAME),
    ("https://LOCALHOST/", INTERNAL_NAME),
    ("https://localhost./", INTERNAL_NAME),
    ("https://localhost:8000/hook", INTERNAL_NAME),
    ("https://foo.localhost/", INTERNAL_NAME),
    ("https://a.b.localhost./", INTERNAL_NAME),
    ("https://printer.local/", INTERNAL_NAME),
    ("https://metadata.google.internal/", INTERNAL_NAME),
    # host name syntax
    ("https://%31%32%37.0.0.1/", PERCENT),
    ("https://127%2E0%2E0%2E1/", PERCENT),
    ("https://\u2460\u2461\u2466.0.0.1/", BAD_NAME),  # circled digits
    ("https://127\u30020\u30020\u30021/", BAD_NAME),  # ideographic full stops
    ("https://exa_mple..com/", BAD_NAME),
    ("https://-bad.example.com/", BAD_NAME),
    ("https://bad-.example.com/", BAD_NAME),
    ("https://" + "a" * 64 + ".example.com/", BAD_NAME),
    ("https://exam!ple.com/", BAD_NAME),
    ("https://./", BAD_NAME),
    # schemes
    ("http://hooks.example.com/x", "must use https://"),
    ("HTTP://hooks.example.com/x", "must use https://"),
    ("http://127.0.0.1/", "must use https://"),
    ("ftp://hooks.example.com/", SCHEME),
    ("file:///etc/passwd", SCHEME),
    ("gopher://hooks.example.com:70/_x", SCHEME),
    ("data:text/plain,hello", SCHEME),
    ("javascript:alert(1)", SCHEME),
    ("ws://hooks.example.com/", SCHEME),
    ("wss://hooks.example.com/", SCHEME),
    ("hooks.example.com/x", SCHEME),
    ("//hooks.example.com/x", SCHEME),
    ("/relative/path", SCHEME),
    # missing host, ports, fragments, length
    ("https://", "must have a host"),
    ("https:///path", "must have a host"),
    ("https:hooks.example.com", "must have a host"),
    ("https://:443/", "must have a host"),
    ("https://hooks.example.com:0/", "port must be between 1 and 65535"),
    ("https://hooks.example.com:65536/", PORT),
    ("https://hooks.example.com:99999/", PORT),
    ("https://hooks.example.com:-1/", PORT),
    ("https://hooks.example.com:abc/", PORT),
    ("https://hooks.example.com/x#frag", "fragment"),
    ("https://a.example/" + "p" * (MAX_URL_LENGTH - len("https://a.example/") + 1), "at most 2048"),
    ("https://a.example/" + "p" * 10_000, "at most 2048"),
    ("", "non-empty string"),
]


def test_there_are_many_bad_urls() -> None:
    assert len(BAD_URLS) >= 40
    assert len({u for u, _ in BAD_URLS}) == len(BAD_URLS)


@pytest.mark.parametrize(("url", "expected"), BAD_URLS)
def test_bad_urls_are_refused(url: str, expected: str) -> None:
    with pytest.raises(UrlRejected) as info:
        check_url(url, allow_http=False, allow_private=False)
    assert expected in info.value.message
    assert info.value.message.startswith("url ")
    assert isinstance(info.value, ValidationFailed)
    assert info.value.status == 422


@pytest.mark.parametrize("value", [None, 123, b"https://hooks.example.com/", ["https://a.b/"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(UrlRejected, match="non-empty string"):
        check_url(value, allow_http=True, allow_private=True)


GOOD_URLS = [
    ("https://hooks.example.com/", "hooks.example.com", 443, None),
    ("https://hooks.example.com", "hooks.example.com", 443, None),
    ("https://HOOKS.Example.COM/Path", "hooks.example.com", 443, None),
    ("https://hooks.example.com./", "hooks.example.com", 443, None),  # stored without the dot
    ("https://hooks.example.com:8443/webhooks/prometora", "hooks.example.com", 8443, None),
    ("https://hooks.example.com:1/", "hooks.example.com", 1, None),
    ("https://hooks.example.com:65535/", "hooks.example.com", 65535, None),
    ("https://hooks.example.com:/x", "hooks.example.com", 443, None),
    ("https://api.example.co.uk/v1/hooks?token=abc&x=1", "api.example.co.uk", 443, None),
    ("https://my_host.example.com/", "my_host.example.com", 443, None),
    ("https://xn--bcher-kva.example/", "xn--bcher-kva.example", 443, None),  # IDNA A-label
    ("https://a.b/", "a.b", 443, None),
    ("https://intranet/", "intranet", 443, None),  # single label: checked once resolved
    ("https://1.2.3.0x/", "1.2.3.0x", 443, None),  # not an IP literal to inet_aton
    ("https://8.8.8.8/", "8.8.8.8", 443, "8.8.8.8"),
    ("https://1.1.1.1:8443/hook?x=%20y", "1.1.1.1", 8443, "1.1.1.1"),
    ("https://134744072/", "134744072", 443, "8.8.8.8"),  # decimal public address
    ("https://0x08080808/", "0x08080808", 443, "8.8.8.8"),
    ("https://172.32.0.1/", "172.32.0.1", 443, "172.32.0.1"),  # just outside 172.16/12
    ("https://11.0.0.1/", "11.0.0.1", 443, "11.0.0.1"),
    ("https://100.128.0.1/", "100.128.0.1", 443, "100.128.0.1"),
    ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111", 443, "2606:4700:4700::1111"),
    ("https://[2001:4860:4860::8888]:8443/x", "2001:4860:4860::8888", 8443, "2001:4860:4860::8888"),
    (
        "https://[2606:4700:4700:0:0:0:0:1111]/",
        "2606:4700:4700:0:0:0:0:1111",
        443,
        "2606:4700:4700::1111",
    ),
]


@pytest.mark.parametrize(("url", "host", "port", "ip"), GOOD_URLS)
@pytest.mark.parametrize("allow_private", [False, True])
def test_good_urls_are_accepted(
    url: str, host: str, port: int, ip: str | None, allow_private: bool
) -> None:
    checked = check_url(url, allow_http=False, allow_private=allow_private)
    assert checked == CheckedUrl(
        url=url,
        scheme="https",
        host=host,
        port=port,
        ip=None if ip is None else ipaddress.ip_address(ip),
    )


def test_longest_allowed_url() -> None:
    url = "https://a.example/" + "p" * (MAX_URL_LENGTH - len("https://a.example/"))
    assert len(url) == MAX_URL_LENGTH == 2048
    assert check_url(url, allow_http=False, allow_private=False).url == url


# -- ALLOW_HTTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "port"), [("http://hooks.example.com/x", 80), ("HTTP://hooks.example.com:8080/", 8080)]
)
def test_http_with_allow_http(url: str, port: int) -> None:
    checked = check_url(url, allow_http=True, allow_private=False)
    assert (checked.scheme, checked.port) == ("http", port)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1/", LOOPBACK),
        ("http://localhost:8000/", INTERNAL_NAME),
        ("ftp://hooks.example.com/", SCHEME),
        ("ws://hooks.example.com/", SCHEME),
    ],
)
def test_allow_http_does_not_open_anything_else(url: str, expected: str) -> None:
    with pytest.raises(UrlRejected, match=expected):
        check_url(url, allow_http=True, allow_private=False)


# -- ALLOW_PRIVATE_NETWORKS ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8443/hook",
        "https://127.1/",
        "https://2130706433/",
        "https://[::1]:8443/",
        "https://localhost:8443/",
        "https://foo.localhost/",
        "https://10.0.0.1/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://100.64.0.1/",
        "https://169.254.1.1/",
        "https://[fe80::1]/",
        "https://[fd12:3456::1]/",
        "https://printer.local/",
    ],
)
def test_private_targets_allowed_for_local_development(url: str) -> None:
    assert check_url(url, allow_http=False, allow_private=True).url == url


def test_dev_mode_http_to_loopback() -> None:
    checked = check_url("http://127.0.0.1:9000/", allow_http=True, allow_private=True)
    assert (checked.scheme, checked.port, str(checked.ip)) == ("http", 9000, "127.0.0.1")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://169.254.169.254/latest/meta-data/", METADATA),
        ("https://2852039166/", METADATA),
        ("https://[fd00:ec2::254]/", METADATA),
        ("https://100.100.100.200/", METADATA),
        ("https://[64:ff9b::a9fe:a9fe]/", TRANSLATION),
        ("https://[64:ff9b::808:808]/", TRANSLATION),
        ("https://[64:ff9b:1::a00:1]/", TRANSLATION),
        ("https://[2002:7f00:1::1]/", TRANSLATION),
        ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", TRANSLATION),
        ("https://[::ffff:127.0.0.1]/", TRANSLATION),
        ("https://[::ffff:a9fe:a9fe]/", TRANSLATION),
        ("https://[::127.0.0.1]/", TRANSLATION),
        ("https://0.0.0.0/", UNSPECIFIED),
        ("https://[::]/", UNSPECIFIED),
        ("https://224.0.0.1/", MULTICAST),
        ("https://[fe80::1%25eth0]/", PERCENT),
        ("https://evil.com@127.0.0.1/", CREDENTIALS),
        ("https://127.0.0.1\\@evil.com/", CONTROL),
    ],
)
def test_still_refused_with_private_networks_allowed(url: str, expected: str) -> None:
    with pytest.raises(UrlRejected) as info:
        check_url(url, allow_http=True, allow_private=True)
    assert expected in info.value.message


# -- literal parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("1.65535", "1.0.255.255"),
        ("1.2.65535", "1.2.255.255"),
        ("1.16777215", "1.255.255.255"),
        ("0", "0.0.0.0"),
        ("00", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
        ("0xffffffff", "255.255.255.255"),
        ("037777777777", "255.255.255.255"),
    ],
)
def test_parse_ipv4_loose(host: str, expected: str) -> None:
    assert parse_ipv4_loose(host) == ipaddress.IPv4Address(expected)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "4294967296",
        "0x100000000",
        "256.0.0.1",
        "1.256.0.1",
        "1.2.3.256",
        "1.2.65536",
        "1.16777216",
        "1.2.3.4.5",
        "1..2",
        "1.2.3.",
        ".1.2.3",
        "08",
        "09.1.1.1",
        "0x",
        "0xg",
        "1.2.3.0x",
        "-1",
        "+1",
        "1 ",
        "example.com",
        "::1",
    ],
)
def test_parse_ipv4_loose_refuses(host: str) -> None:
    assert parse_ipv4_loose(host) is None


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


needs_glibc_inet_aton = pytest.mark.skipif(
    _inet_aton("0x7f.1") is None or _inet_aton("0x") is not None,
    reason="the platform's inet_aton does not accept the BSD/glibc shorthand forms",
)


def _number(value: int) -> st.SearchStrategy[str]:
    return st.sampled_from([str(value), f"0{value:o}", f"0x{value:x}", f"0X{value:X}"])


@st.composite
def numeric_hosts(draw: st.DrawFn) -> str:
    """Dotted forms of 1 to 4 parts, each part decimal, octal or hex, in or out of range."""
    count = draw(st.integers(1, 4))
    limits = [255] * (count - 1) + [256 ** (5 - count) - 1]
    parts = []
    for limit in limits:
        value = draw(st.integers(0, limit) | st.integers(limit + 1, limit * 2 + 2))
        parts.append(draw(_number(value)))
    return ".".join(parts)


@needs_glibc_inet_aton
@settings(max_examples=150, deadline=None, database=None)
@given(st.one_of(numeric_hosts(), st.text(alphabet="0123456789abcdefxX.", max_size=14)))
def test_parse_ipv4_loose_agrees_with_inet_aton(host: str) -> None:
    assert parse_ipv4_loose(host) == _inet_aton(host)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[fd00:ec2::254]", "fd00:ec2::254"),
        ("127.1", "127.0.0.1"),
        ("example.com", None),
        ("[example.com]", None),
        ("1:2:3", None),
    ],
)
def test_parse_ip_host(host: str, expected: str | None) -> None:
    result = parse_ip_host(host)
    assert result == (None if expected is None else ipaddress.ip_address(expected))


# -- property: check_url refuses a literal exactly when classify has a reason -------------------


def _outcome(url: str) -> str | None:
    try:
        check_url(url, allow_http=False, allow_private=False)
    except UrlRejected as exc:
        return exc.message
    return None


def _assert_agrees(url: str, reason: str | None) -> None:
    message = _outcome(url)
    if reason is None:
        assert message is None, url
    else:
        assert message == f"url must not point at a {reason}", url


@settings(max_examples=150, deadline=None, database=None)
@given(st.ip_addresses(v=4))
def test_ipv4_literals_in_every_notation_follow_classify(addr: ipaddress.IPv4Address) -> None:
    reason = classify(addr, allow_private=False)
    value = int(addr)
    a, b, c, d = addr.packed
    notations = [
        str(addr),
        str(value),
        hex(value),
        f"0{value:o}",
        f"{a}.{b}.{(c << 8) | d}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}",
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        f"{addr}.",
    ]
    for host in notations:
        assert parse_ipv4_loose(host.rstrip(".")) == addr, host
        _assert_agrees(f"https://{host}/", reason)
        _assert_agrees(f"https://{host}:8443/hook?x=1", reason)


@settings(max_examples=150, deadline=None, database=None)
@given(st.ip_addresses(v=6))
def test_ipv6_literals_follow_classify(addr: ipaddress.IPv6Address) -> None:
    reason = classify(addr, allow_private=False)
    for text in {addr.compressed, addr.exploded, addr.exploded.upper()}:
        _assert_agrees(f"https://[{text}]/", reason)
        _assert_agrees(f"https://[{text}]:8443/x", reason)


@settings(max_examples=100, deadline=None, database=None)
@given(st.ip_addresses())
def test_private_mode_follows_classify_too(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    reason = classify(addr, allow_private=True)
    host = f"[{addr}]" if addr.version == 6 else str(int(addr))
    url = f"https://{host}/"
    if reason is None:
        assert check_url(url, allow_http=False, allow_private=True).ip == addr
    else:
        with pytest.raises(UrlRejected) as info:
            check_url(url, allow_http=False, allow_private=True)
        assert info.value.message == f"url must not point at a {reason}"

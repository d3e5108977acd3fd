"""The outbound client against hostile receivers: real sockets, real TLS, no mocks.

Each case states its outcome: a failed attempt with a short reason, bounded time and memory,
and no connection to anything the SSRF guard refuses.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from prometora_webhooks.delivery.client import KEEP_BYTES, Sender, SendResult, make_session
from prometora_webhooks.delivery.guard import GuardedResolver

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TIMEOUT = 2.0


class Listener:
    """A plain TCP listener that counts connection attempts (and never answers)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    lst = Listener()
    await lst.start()
    yield lst
    await lst.stop()


@pytest.fixture
async def https_server(
    ca: trustme.CA,
) -> AsyncIterator[Callable[..., Awaitable[int]]]:
    """Start an aiohttp HTTPS server with one handler; returns its port."""
    runners: list[web.AppRunner] = []

    async def start(
        handler: Handler, cert_host: str = "localhost", issuer: trustme.CA | None = None
    ) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (issuer or ca).issue_cert(cert_host).configure_cert(ctx)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        runners.append(runner)
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    yield start
    for r in runners:
        await r.cleanup()


def _sender(
    ca_path: str, *, allow_private: bool = True, resolver: AbstractResolver | None = None
) -> Sender:
    session = make_session(allow_private=allow_private, ca_bundle=Path(ca_path), limit=10)
    if resolver is not None:
        session.connector._resolver = resolver  # type: ignore[union-attr]
    return Sender(session, timeout=TIMEOUT, allow_http=False, allow_private=allow_private)


async def _send(sender: Sender, url: str) -> tuple[SendResult, float]:
    t0 = time.monotonic()
    try:
        res = await sender.send(url, b'{"id":"evt_1"}', {"content-type": "application/json"})
    finally:
        await sender._session.close()
    return res, time.monotonic() - t0


async def test_trickling_body_hits_the_single_deadline(https_server, ca_path) -> None:  # type: ignore[no-untyped-def]
    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        await resp.prepare(request)
        for _ in range(60):
            await resp.write(b"x")
            await asyncio.sleep(0.2)
        return resp

    port = await https_server(trickle)
    res, took = await _send(_sender(ca_path), f"https://localhost:{port}/")
    assert not res.succeeded
    assert res.error == "timeout"
    assert took < TIMEOUT + 1.5


@pytest.mark.parametrize("chunked", [False, True], ids=["huge-body", "endless-chunked"])
async def test_huge_or_endless_response_costs_bounded_bytes(
    https_server, ca_path, chunked: bool
) -> None:  # type: ignore[no-untyped-def]
    sent = [0]

    async def flood(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        if not chunked:
            resp.content_length = 1 << 30  # claims a gigabyte
        await resp.prepare(request)
        block = b"A" * 65536
        try:
            while sent[0] < (1 << 30):
                await resp.write(block)
                sent[0] += len(block)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    port = await https_server(flood)
    res, took = await _send(_sender(ca_path), f"https://localhost:{port}/")
    assert res.succeeded  # a 200 is a 200; we simply stop reading
    assert res.body == b"A" * KEEP_BYTES
    assert took < TIMEOUT  # stopped early, not at the deadline
    assert sent[0] < 64 * 1024 * 1024  # the connection was dropped long before a gigabyte


async def test_tls_certificate_for_another_host_fails(https_server, ca_path) -> None:  # type: ignore[no-untyped-def]
    port = await https_server(lambda r: _ok(), cert_host="other.example")
    res, _ = await _send(_sender(ca_path), f"https://localhost:{port}/")
    assert not res.succeeded
    assert res.http_status is None
    assert res.error is not None
    assert res.error.startswith("tls:"), res.error


async def test_self_signed_certificate_fails(https_server, ca_path) -> None:  # type: ignore[no-untyped-def]
    port = await https_server(lambda r: _ok(), issuer=trustme.CA())
    res, _ = await _send(_sender(ca_path), f"https://localhost:{port}/")
    assert not res.succeeded
    assert res.error is not None
    assert res.error.startswith("tls:"), res.error


async def _ok() -> web.Response:
    return web.Response(text="ok")


async def test_connection_reset_is_a_failure(ca_path: str) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.close()  # RST instead of FIN

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        res, _ = await _send(_sender(ca_path), f"https://localhost:{port}/")
    finally:
        server.close()
    assert not res.succeeded
    assert res.http_status is None
    assert res.error in {
        "connection reset",
        "connection closed by receiver",
        "tls: handshake failed",
        "connection error",
        "connection failed",
    }, res.error


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_to_internal_addresses_are_not_followed(
    https_server, ca_path, listener: Listener, status: int
) -> None:  # type: ignore[no-untyped-def]
    async def redirect(request: web.Request) -> web.Response:
        return web.Response(
            status=status, headers={"Location": f"http://127.0.0.1:{listener.port}/metadata"}
        )

    port = await https_server(redirect)
    res, _ = await _send(_sender(ca_path), f"https://localhost:{port}/")
    assert not res.succeeded
    assert res.http_status == status
    assert res.error == "redirect not followed"
    assert listener.accepted == 0


class RebindingResolver(AbstractResolver):
    """A resolver the test controls: a public-looking address first, loopback afterwards."""

    def __init__(self, port: int) -> None:
        self.calls = 0
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        addr = "93.184.216.34" if self.calls == 1 else "127.0.0.1"
        return [
            ResolveResult(
                hostname=host, host=addr, port=self.port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


async def test_dns_rebinding_to_loopback_is_refused_before_connecting(
    listener: Listener, ca_path: str
) -> None:
    import ipaddress

    from prometora_webhooks.domain.addresses import classify

    inner = RebindingResolver(listener.port)
    # "at creation": the name resolves to a public address and passes the check
    first = await inner.resolve("rebind.example", 443)
    assert classify(ipaddress.ip_address(first[0]["host"])) is None
    # "at delivery": the same name now resolves to 127.0.0.1
    sender = _sender(ca_path, allow_private=False, resolver=GuardedResolver(False, inner))
    res, _ = await _send(sender, f"https://rebind.example:{listener.port}/hook")
    assert not res.succeeded
    assert res.error is not None
    assert res.error.startswith("blocked:"), res.error
    assert inner.calls == 2
    assert listener.accepted == 0  # the socket never opened


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/",
        "https://[::ffff:127.0.0.1]:{port}/",
        "https://2130706433:{port}/",
        "https://169.254.169.254:{port}/latest/meta-data",
    ],
)
async def test_literal_internal_addresses_are_refused_at_delivery(
    listener: Listener, ca_path: str, url: str
) -> None:
    sender = _sender(ca_path, allow_private=False)
    res, _ = await _send(sender, url.format(port=listener.port))
    assert not res.succeeded
    assert res.error is not None
    assert res.error.startswith("blocked:"), res.error
    assert listener.accepted == 0


async def test_proxy_environment_is_ignored(
    https_server, ca_path, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{listener.port}")
    port = await https_server(lambda r: _ok())
    res, _ = await _send(_sender(ca_path), f"https://localhost:{port}/")
    assert res.succeeded, res.error
    assert listener.accepted == 0

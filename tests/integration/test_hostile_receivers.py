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
from aiohttp.abc import AbstractResolver

from prometora_webhooks.delivery.client import (
    KEEP_BYTES,
    READ_CAP,
    Sender,
    SendResult,
    make_session,
)
from tests.support.listener import Listener
from tests.support.receiver import Received, Receiver, wait_until
from tests.support.service import Service

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TIMEOUT = 2.0


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with Listener() as lst:
        yield lst


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
    session = make_session(
        allow_private=allow_private, ca_bundle=Path(ca_path), limit=10, resolver=resolver
    )
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


async def test_deadlines_are_not_rounded_together(https_server, ca_path) -> None:  # type: ignore[no-untyped-def]
    """Two attempts to a receiver that never answers, started 0.4 s apart, time out 0.4 s
    apart. aiohttp rounds deadlines of 5 s or more up to a whole second unless told not to:
    then a stalled receiver's attempts all fail at one instant, and their retries and new
    connections come back as one burst that the healthy endpoints' deliveries wait behind."""
    gap, timeout = 0.4, 5.0

    async def never(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    port = await https_server(never)
    session = make_session(allow_private=True, ca_bundle=Path(ca_path), limit=10)
    sender = Sender(session, timeout=timeout, allow_http=False, allow_private=True)
    loop = asyncio.get_running_loop()

    async def one(delay: float) -> tuple[SendResult, float]:
        await asyncio.sleep(delay)
        res = await sender.send(f"https://localhost:{port}/", b"{}", {})
        return res, loop.time()

    try:
        (first, end1), (second, end2) = await asyncio.gather(one(0.0), one(gap))
    finally:
        await session.close()
    assert first.error == second.error == "timeout"
    assert abs((end2 - end1) - gap) < 0.2  # rounded, they would end together or 1 s apart


def numbered_lines(size: int) -> bytes:
    """ASCII where every 8-byte line differs ("0000000\\n", "0000001\\n", ...): a body whose
    first KEEP_BYTES cannot be mistaken for any other 1 KiB of it."""
    return b"".join(b"%07d\n" % i for i in range(size // 8))


GIB = 1 << 30
SEND_BUFFER = 256 * 1024
# What a receiver can push into the loopback connection's buffers (its socket's send buffer,
# our receive buffer, TLS records in flight) before noticing we stopped reading: well under a
# MiB with the receiver's send buffer fixed, so this is generous. Reading the body to the end
# would be the whole gigabyte (or the deadline's worth).
BUFFER_MARGIN = 8 * 1024 * 1024


class Flood:
    """A receiver that streams a huge body and counts the bytes it wrote before the peer
    went away (a reset or broken pipe on write)."""

    def __init__(self, *, chunked: bool, total: int = GIB) -> None:
        self.chunked = chunked
        self.total = total
        self.written = 0
        self.stopped_by_peer = False
        self.done = asyncio.Event()
        self.pattern = numbered_lines(1 << 20)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        # A fixed send buffer (no autotuning up to tcp_wmem's max): what is "in the pipe" when
        # we hang up stays small, so the count measures what we read.
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        resp = web.StreamResponse(status=200)
        if not self.chunked:
            resp.content_length = self.total  # a gigabyte, announced
        await resp.prepare(request)
        try:
            while self.written < self.total:
                await resp.write(self.pattern[:65536] if self.written else self.pattern)
                self.written += 65536 if self.written else len(self.pattern)
        except (ConnectionError, RuntimeError):
            self.stopped_by_peer = True
        finally:
            self.done.set()
        return resp


@pytest.mark.parametrize("chunked", [False, True], ids=["huge-body", "endless-chunked"])
async def test_huge_or_endless_response_costs_bounded_bytes(
    https_server, ca_path, chunked: bool
) -> None:  # type: ignore[no-untyped-def]
    flood = Flood(chunked=chunked)
    port = await https_server(flood)
    res, took = await _send(_sender(ca_path), f"https://localhost:{port}/")
    assert res.succeeded  # a 200 is a 200; we simply stop reading
    assert res.body == flood.pattern[:KEEP_BYTES]  # exactly the first 1 KiB
    assert took < TIMEOUT  # stopped early, not at the deadline
    await asyncio.wait_for(flood.done.wait(), 10)
    assert flood.stopped_by_peer  # we hung up; the receiver did not finish
    # at most READ_CAP read, plus what the buffers held: nowhere near the gigabyte
    assert flood.written < READ_CAP + BUFFER_MARGIN, flood.written


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


@pytest.mark.parametrize(
    ("url", "allow_private", "error"),
    [
        ("https://127.0.0.1:{port}/", False, "blocked: loopback address"),
        ("https://[::ffff:127.0.0.1]:{port}/", False, "blocked: IPv6 translation address"),
        ("https://2130706433:{port}/", False, "blocked: loopback address"),
        ("https://0x7f.1:{port}/", False, "blocked: loopback address"),
        ("https://10.0.0.1:{port}/", False, "blocked: private address"),
        (
            "https://169.254.169.254:{port}/latest/meta-data",
            False,
            "blocked: cloud metadata address",
        ),
        # refused even with ALLOW_PRIVATE_NETWORKS
        (
            "https://169.254.169.254:{port}/latest/meta-data",
            True,
            "blocked: cloud metadata address",
        ),
        ("https://169.254.170.23:{port}/v1/credentials", True, "blocked: cloud metadata address"),
        ("https://[fd00:ec2::23]:{port}/v1/credentials", True, "blocked: cloud metadata address"),
        ("https://169.254.169.253:{port}/", True, "blocked: cloud metadata address"),
        ("https://[fe80::1%25lo]:{port}/", True, "blocked: scoped IPv6 address"),
    ],
)
async def test_literal_internal_addresses_are_refused_at_delivery(
    listener: Listener, ca_path: str, url: str, allow_private: bool, error: str
) -> None:
    """The literal's refusal reads like the resolver's ("blocked: private address", ...)."""
    sender = _sender(ca_path, allow_private=allow_private)
    res, _ = await _send(sender, url.format(port=listener.port))
    assert not res.succeeded
    assert res.http_status is None
    assert res.error == error
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


class FloodingReceiver(Receiver):
    """The suite's HTTPS receiver, answering every request with a gigabyte of numbered lines."""

    def __init__(self, ca: trustme.CA, ca_path: str) -> None:
        super().__init__(ca, ca_path)
        self.flood = Flood(chunked=False)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        with self._lock:
            self.requests.append(Received(request.path, dict(request.headers), b"", 0.0))
        return await self.flood(request)


def test_the_delivery_log_keeps_exactly_the_first_kib_of_a_huge_body(
    service: Service, ca: trustme.CA, ca_path: str
) -> None:
    """Through the running service: the attempt succeeds, its logged response_body is the
    first 1024 bytes of the body exactly, and the service stopped reading at the cap."""
    receiver = FloodingReceiver(ca, ca_path)
    receiver.start()
    try:
        store_id, key = service.create_store()
        ep = service.create_endpoint(key, receiver.url("/flood"))
        assert service.publish(store_id).status_code == 202
        (attempt,) = service.wait_attempts(key, ep["id"], 1)
        flood = receiver.flood
        wait_until(flood.done.is_set, 10, "the receiver to see the hang-up")
    finally:
        receiver.stop()
    assert attempt["status"] == "succeeded", attempt
    assert attempt["http_status"] == 200
    assert attempt["error"] is None
    assert attempt["response_body"] == flood.pattern[:KEEP_BYTES].decode("ascii")
    assert len(receiver.received("/flood")) == 1
    assert flood.stopped_by_peer
    assert flood.written < READ_CAP + BUFFER_MARGIN, flood.written


async def test_each_attempt_times_out_on_its_own_deadline_among_quick_ones(  # type: ignore[no-untyped-def]
    https_server, ca_path
) -> None:
    """Attempts that never get an answer, started 0.3 s apart between quick successful ones
    (which end first and leave the deadline queue early), each time out one timeout after
    their own start; the quick ones are not interrupted."""
    timeout, gap = 1.5, 0.3

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/never":
            await asyncio.sleep(3600)
        return web.Response(status=204)

    port = await https_server(handler)
    session = make_session(allow_private=True, ca_bundle=Path(ca_path), limit=50)
    sender = Sender(session, timeout=timeout, allow_http=False, allow_private=True)
    loop = asyncio.get_running_loop()

    async def one(delay: float, path: str) -> tuple[SendResult, float, float]:
        await asyncio.sleep(delay)
        start = loop.time()
        res = await sender.send(f"https://localhost:{port}{path}", b"{}", {})
        return res, start, loop.time()

    jobs = [one(i * gap, "/never") for i in range(3)]
    jobs += [one(i * 0.1, "/quick") for i in range(12)]
    try:
        results = await asyncio.gather(*jobs)
    finally:
        sender.close()
        await session.close()
    for res, start, end in results[:3]:
        assert res.error == "timeout"
        assert abs((end - start) - timeout) < 0.25, end - start
    for res, _, _ in results[3:]:
        assert res.succeeded, res.error


async def test_an_attempt_cancelled_from_outside_is_not_a_timeout(https_server, ca_path) -> None:  # type: ignore[no-untyped-def]
    """A stop cancels attempts in flight: the cancellation goes through (the worker's stop
    relies on it) instead of being reported as the attempt's timeout, and the sender's later
    attempts still time out on their deadline."""

    async def never(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    port = await https_server(never)
    session = make_session(allow_private=True, ca_bundle=Path(ca_path), limit=10)
    sender = Sender(session, timeout=1.0, allow_http=False, allow_private=True)
    url = f"https://localhost:{port}/"
    try:
        task = asyncio.ensure_future(sender.send(url, b"{}", {}))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        res = await sender.send(url, b"{}", {})
    finally:
        sender.close()
        await session.close()
    assert res.error == "timeout"

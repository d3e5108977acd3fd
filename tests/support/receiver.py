"""A real HTTPS receiver (trustme certificates) running in its own thread and event loop.

Tests script it per path: a status sequence, a delay, a redirect, a body; it records every
request (headers, exact body bytes, arrival time).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trustme
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Script:
    statuses: list[int] = field(default_factory=lambda: [200])  # last one repeats
    delay: float = 0.0
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    def next_status(self) -> int:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return status


class Receiver:
    def __init__(self, ca: trustme.CA, ca_path: str) -> None:
        self.ca = ca
        self.ca_path = ca_path
        self.requests: list[Received] = []
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- control ----------------------------------------------------------------------------
    def url(self, path: str = "/hook", host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def script(self, path: str, **kwargs: object) -> Script:
        s = Script(**kwargs)  # type: ignore[arg-type]
        with self._lock:
            self._scripts[path] = s
        return s

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 15.0
    ) -> list[Received]:
        return wait_until(
            lambda: len(self.received(path)) >= count,
            timeout,
            f"{count} requests on {path}",
            lambda: self.received(path),
        )

    # -- server -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self.requests.append(
                Received(request.path, dict(request.headers), body, time.monotonic())
            )
            script = self._scripts.get(request.path, Script())
            status = script.next_status()
        if script.delay:
            await asyncio.sleep(script.delay)
        return web.Response(status=status, body=script.body, headers=script.headers)

    async def _start(self, ssl_ctx: ssl.SSLContext) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_ctx)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> None:
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(ctx), self._loop).result(10)

    def stop(self) -> None:
        async def _stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    show: Callable[[], object] | None = None,
    interval: float = 0.02,
):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true (the condition is awaited, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return show() if show else True
        if time.monotonic() > deadline:
            extra = f"; last seen: {show()!r}"[:2000] if show else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)

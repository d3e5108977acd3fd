"""One webhook attempt over HTTP: guarded address, one deadline, capped response, no redirects."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from .. import __version__
from ..domain.addresses import IPAddress, classify
from ..domain.errors import UrlRejected
from ..domain.urls import check_url, parse_ip_host
from .guard import BlockedAddress, GuardedResolver

USER_AGENT = f"Prometora-Webhooks/{__version__}"
KEEP_BYTES = 1024
READ_CAP = 64 * 1024
PRECHECK_CACHE = 4096  # URLs whose literal-address verdict is remembered (a pure function)


@dataclass(slots=True)
class SendResult:
    succeeded: bool
    http_status: int | None
    response_time_ms: int
    error: str | None
    body: bytes
    retry_after: str | None


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_bundle is not None:
        ctx.load_verify_locations(cafile=str(ca_bundle))
    return ctx


def make_session(
    *,
    allow_private: bool,
    ca_bundle: Path | None,
    limit: int,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """``resolver`` answers the lookups (the system's by default); every answer is checked."""
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=0,
        ssl=ssl_context(ca_bundle),
        resolver=GuardedResolver(allow_private, resolver),
        use_dns_cache=False,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,  # never route deliveries through an environment proxy
        auto_decompress=False,  # the byte cap applies to what crosses the wire
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("Accept-Encoding",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def _describe(exc: BaseException) -> str:
    """A short, secret-free reason for the delivery log."""
    if isinstance(exc, BlockedAddress):
        return f"blocked: {exc.reason}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"tls: certificate verify failed ({exc.certificate_error.__class__.__name__})"[:200]
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls: handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_err = exc.os_error
        if isinstance(os_err, BlockedAddress):
            return f"blocked: {os_err.reason}"
        if isinstance(os_err, ssl.SSLError):
            return f"tls: {os_err.reason or 'handshake failed'}".lower()[:200]
        if isinstance(os_err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, aiohttp.ClientConnectorDNSError) or "Name or service" in str(os_err):
            return "dns: host name does not resolve"
        return "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed by receiver"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "invalid response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid HTTP response"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, aiohttp.ClientOSError):
        return "connection reset" if "reset" in str(exc).lower() else "connection error"
    if isinstance(exc, ssl.SSLError):
        return "tls: handshake failed"
    return "request failed"


class _Attempt:
    """An attempt in flight: when it must end, and the task to interrupt then."""

    __slots__ = ("deadline", "task", "timed_out")

    def __init__(self, deadline: float, task: asyncio.Task[object] | None) -> None:
        self.deadline = deadline
        self.task = task  # None once the attempt has ended
        self.timed_out = False


class Deadlines:
    """One deadline for every attempt in flight, kept by one task instead of a timer each.

    Every attempt gets the same timeout, so deadlines come in the order attempts start: a
    queue, whose head is the next to expire. One task sleeps until that head's deadline and
    interrupts (cancels) an attempt still running then; ended attempts leave the queue as they
    reach its head. aiohttp's own per-request timeout made a timer (a libuv handle under uvloop)
    and a timer context per attempt: ~5 % of a delivery's CPU. Deadlines are exact, not rounded
    (rounded, a stalled receiver's attempts all time out at the same instant and come back as
    one burst)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._queue: deque[_Attempt] = deque()
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> _Attempt:
        """The current task's attempt starts now; end it with ``end()``."""
        loop = asyncio.get_running_loop()
        attempt = _Attempt(loop.time() + self._timeout, asyncio.current_task())
        queue = self._queue
        self._drop_ended()  # the queue stays short
        queue.append(attempt)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._expire(), name="pw-deadlines")
        elif len(queue) == 1:
            self._added.set()
        return attempt

    @staticmethod
    def end(attempt: _Attempt) -> None:
        attempt.task = None

    def _drop_ended(self) -> None:
        queue = self._queue
        while queue and queue[0].task is None:
            queue.popleft()

    async def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            self._drop_ended()
            if not queue:
                self._added.clear()
                await self._added.wait()
                continue
            head = queue[0]
            wait = head.deadline - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            queue.popleft()
            if head.task is not None:
                head.timed_out = True
                head.task.cancel()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


class Sender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        allow_http: bool,
        allow_private: bool,
    ) -> None:
        self._session = session
        # One deadline per attempt, covering the lookup, connecting, the request and reading
        # the response; kept by Deadlines, not by a timer per request in aiohttp.
        self._deadlines = Deadlines(timeout)
        self._allow_http = allow_http
        self._allow_private = allow_private
        self._verdicts: dict[str, str | None] = {}

    def close(self) -> None:
        self._deadlines.close()

    def _precheck(self, url: str) -> str | None:
        """The literal-address rules again (aiohttp does not resolve IP literals).

        The verdict depends only on the URL and this sender's settings, so it is remembered;
        host names are still resolved and checked on every attempt by the resolver."""
        try:
            return self._verdicts[url]
        except KeyError:
            pass
        verdict = self._check(url)
        if len(self._verdicts) >= PRECHECK_CACHE:
            self._verdicts.clear()
        self._verdicts[url] = verdict
        return verdict

    def _check(self, url: str) -> str | None:
        """An IP literal refused reads as the resolver's refusal ("blocked: private address");
        any other problem with the URL as the validator states it."""
        ip = _literal_ip(url)
        if ip is not None:
            reason = classify(ip, allow_private=self._allow_private)
            if reason is not None:
                return f"blocked: {reason}"
        try:
            check_url(url, allow_http=self._allow_http, allow_private=self._allow_private)
        except UrlRejected as exc:
            return f"blocked: {exc.message}"[:200]
        return None

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        start = time.perf_counter()
        blocked = self._precheck(url)
        if blocked is not None:
            return SendResult(False, None, 0, blocked, b"", None)
        status: int | None = None
        retry_after: str | None = None
        data = b""
        error: str | None = None
        attempt = self._deadlines.start()
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                data = await _read_capped(resp)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # Interrupted by its deadline (and by nothing else: a stop cancels too).
            if not attempt.timed_out or task is None or task.uncancel() > 0:
                raise
            error = "timeout"
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            error = _describe(exc)
        except aiohttp.InvalidURL:
            error = "invalid url"
        finally:
            self._deadlines.end(attempt)
        elapsed = int((time.perf_counter() - start) * 1000)
        if error is None and status is not None:
            if 200 <= status < 300:
                return SendResult(True, status, elapsed, None, data, None)
            error = "redirect not followed" if 300 <= status < 400 else f"HTTP {status}"
        return SendResult(
            False, status if error != "timeout" else None, elapsed, error, data, retry_after
        )


def _literal_ip(url: str) -> IPAddress | None:
    """The address a URL's host names literally (in any notation), or None."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return parse_ip_host(host.rstrip(".")) if host else None


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    """Read at most READ_CAP bytes of the body; keep the first KEEP_BYTES."""
    announced = resp.content_length
    if announced is not None and announced <= READ_CAP:
        # The usual case, a short body of known length: one read (the parser stops at the
        # announced length, so no more than that crosses over).
        return (await resp.read())[:KEEP_BYTES]
    kept = bytearray()
    total = 0
    while total < READ_CAP:
        chunk = await resp.content.read(min(16384, READ_CAP - total))
        if not chunk:
            break
        total += len(chunk)
        if len(kept) < KEEP_BYTES:
            kept += chunk[: KEEP_BYTES - len(kept)]
    if not resp.content.at_eof():
        resp.close()  # stop reading a huge or endless body: drop the connection
    return bytes(kept)

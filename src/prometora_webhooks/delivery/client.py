"""One webhook attempt over HTTP: guarded address, one deadline, capped response, no redirects."""

from __future__ import annotations

import math
import ssl
import time
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
        # aiohttp's own deadline: it covers the lookup, connecting, the request and reading the
        # response (one timer per attempt, instead of a second one around the call). Not
        # rounded up to a whole second (aiohttp does that from 5 s on): rounded, a stalled
        # receiver's attempts all time out at the same instant and come back as one burst.
        self._timeout = aiohttp.ClientTimeout(total=timeout, ceil_threshold=math.inf)
        self._allow_http = allow_http
        self._allow_private = allow_private
        self._verdicts: dict[str, str | None] = {}

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
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self._timeout
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                data = await _read_capped(resp)
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            error = _describe(exc)
        except aiohttp.InvalidURL:
            error = "invalid url"
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

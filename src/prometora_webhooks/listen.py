"""`prometora-webhooks listen`: a store's live events forwarded to a local URL (like
`stripe listen`), signed with a secret printed at start, reconnecting with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from .delivery.client import USER_AGENT
from .signing import generate_secret, secret_key, signature_header


@dataclass(frozen=True, slots=True)
class SseEvent:
    id: str
    type: str
    data: bytes


async def read_sse(resp: aiohttp.ClientResponse) -> AsyncIterator[SseEvent]:
    """Parse a text/event-stream response into events (comments and keep-alives skipped)."""
    ev_id, ev_type, data = "", "message", b""
    async for raw in resp.content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield SseEvent(ev_id, ev_type, data)
            ev_id, ev_type, data = "", "message", b""
        elif line.startswith(b":"):
            continue
        else:
            field, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if field == b"id":
                ev_id = value.decode()
            elif field == b"event":
                ev_type = value.decode()
            elif field == b"data":
                data = data + b"\n" + value if data else value


class ListenError(Exception):
    """The stream was refused or ended for good (bad token, unknown store, rotated key)."""


# Answers that will not change by retrying: stop with the server's message.
_FINAL_STATUSES = frozenset({400, 401, 402, 403, 404, 422})


def _error_message(status: int | None, text: str) -> str:
    """The message of an error envelope ``{"error": {"code", "message"}}``, with its code."""
    where = f"HTTP {status} " if status is not None else ""
    try:
        error = json.loads(text)["error"]
        return f"{error['message']} ({where}{error['code']})"
    except (ValueError, KeyError, TypeError):
        return f"{where}{text[:300]}".strip()


class Forwarder:
    def __init__(
        self,
        api_url: str,
        token: str,
        store_id: str,
        forward_to: str,
        echo: Callable[[str], None],
        secret: str | None = None,
    ) -> None:
        self.secret = secret or generate_secret()
        self._key = secret_key(self.secret)
        self._store_id = store_id
        self._stream_url = f"{api_url.rstrip('/')}/v1/events/stream?store_id={store_id}"
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        self._forward_to = forward_to
        self._echo = echo
        self.forwarded = 0
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the stream until ``stop`` is set, reconnecting (with Last-Event-ID) after
        network errors and server errors; raise ``ListenError`` when the stream is refused."""
        last_id: str | None = None
        backoff = 0.5
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                headers = dict(self._headers)
                if last_id:
                    headers["Last-Event-ID"] = last_id
                try:
                    async with session.get(self._stream_url, headers=headers) as resp:
                        if resp.status != 200:
                            message = _error_message(resp.status, await resp.text())
                            if resp.status in _FINAL_STATUSES:
                                raise ListenError(f"the event stream was refused: {message}")
                            raise aiohttp.ClientResponseError(
                                resp.request_info, (), status=resp.status, message=message
                            )
                        backoff = 0.5
                        # The server fixes the stream's starting point before it answers, so
                        # every event published from now on is forwarded.
                        if not self.connected.is_set():
                            self.connected.set()
                            self._echo(
                                f"Ready! Forwarding events for {self._store_id} "
                                f"to {self._forward_to}"
                            )
                        else:
                            self._echo("stream reconnected")
                        async for ev in read_sse(resp):
                            if ev.type == "error":
                                raise ListenError(
                                    "the event stream ended: "
                                    + _error_message(None, ev.data.decode(errors="replace"))
                                )
                            last_id = ev.id or last_id
                            await self._forward(session, ev)
                except (aiohttp.ClientError, OSError) as exc:
                    why = exc.__class__.__name__
                    if isinstance(exc, aiohttp.ClientResponseError):
                        why = f"{exc.message}"
                    self._echo(f"stream interrupted ({why}); reconnecting")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _forward(self, session: aiohttp.ClientSession, ev: SseEvent) -> None:
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": ev.id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signature_header([self._key], ev.id, ts, ev.data),
        }
        started = time.perf_counter()
        try:
            async with session.post(
                self._forward_to,
                data=ev.data,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                status = str(resp.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status = f"failed ({exc.__class__.__name__})"
        ms = int((time.perf_counter() - started) * 1000)
        self.forwarded += 1
        self._echo(f"--> {ev.type} {ev.id}  [{status}] {ms} ms")

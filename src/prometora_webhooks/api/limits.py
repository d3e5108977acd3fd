"""Request body caps, measured on the raw bytes before any parsing."""

from __future__ import annotations

import re

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLISH_LIMIT = 256 * 1024
DEFAULT_LIMIT = 16 * 1024
_PUBLISH = re.compile(r"^/v1/stores/[^/]+/events/?$")


class _TooLarge(HTTPException):
    """Raised from ``receive``; FastAPI passes HTTPExceptions through body parsing unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit // 1024} KiB")


def _limit_for(path: str) -> int:
    return PUBLISH_LIMIT if _PUBLISH.match(path) else DEFAULT_LIMIT


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _limit_for(scope["path"])
        if scope["path"].startswith("/v1/"):
            scope = _as_json(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _reject(send, limit)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _reject(send, limit)


async def _reject(send: Send, limit: int) -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"request body is larger than {limit // 1024} KiB",
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _as_json(scope: Scope) -> Scope:
    """The API speaks only JSON: a body sent without a JSON content type is read as JSON."""
    headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
    for k, v in scope.get("headers", ()):
        if k == b"content-type" and b"json" in v.lower():
            return scope
    headers.append((b"content-type", b"application/json"))
    return {**scope, "headers": headers}

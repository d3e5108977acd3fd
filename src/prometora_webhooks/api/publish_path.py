"""``POST /v1/stores/{store_id}/events`` on a short path: the one route every event takes.

FastAPI gives each request a Starlette ``Request``, an exception and an async-exit-stack
middleware, a walk of the routing table, and dependency resolution for each parameter: about
three quarters of a publish's CPU in the API, and a sixth of the whole service's per delivery
on SQLite (py-spy, ``bench e2e``). This middleware answers a well-formed publish itself, with
the same steps in the same order as the FastAPI route: read the body (within the publish cap),
parse and validate it with the route's own model, authenticate, publish.

Anything else goes to the FastAPI route, with the body it has read handed on unchanged: a
missing or wrong token, a store API key, a body that is not a valid ``EventCreate``, an
over-long path or header, a body over the cap. So every refusal is the route's own, down to
which error wins when a request has several. The route stays the API's documentation (OpenAPI)
and its reference: ``tests/integration/test_publish_path.py`` checks that both answer alike.
An error raised by the publish itself (unknown store, off-plan, schema, database) is answered
by the application's own exception handler for it, as ExceptionMiddleware would.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pydantic
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import metrics
from ..runtime import Runtime
from .limits import PUBLISH_LIMIT
from .schemas import EventCreate

_PATH = re.compile(r"^/v1/stores/([^/]+)/events$")
MAX_STORE_ID = 64  # the route's Path(max_length=64)
MAX_IDEMPOTENCY_KEY = 255  # the route's Header(max_length=255)
_JSON = (b"content-type", b"application/json")
_JSON_TYPE = re.compile(rb"^application/(json|[^/]*\+json)$")


class PublishPath:
    """ASGI middleware: well-formed publishes answered here, every other request passed on."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _PATH.match(scope["path"])
            if match is not None and len(match[1]) <= MAX_STORE_ID:
                await self._publish(scope, receive, send, match[1])
                return
        await self.app(scope, receive, send)

    async def _publish(self, scope: Scope, receive: Receive, send: Send, store_id: str) -> None:
        authorization, idempotency_key, length, as_json = _headers(scope)
        if not as_json or (length is not None and length > PUBLISH_LIMIT):
            await self.app(scope, receive, send)  # the route decides, body unread
            return
        body, more = await _read(receive)
        if more or (idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY):
            await self.app(scope, _replay(body, more, receive), send)
            return
        try:
            # What the route does: Starlette's Request.json(), then the model (python mode).
            event = EventCreate.model_validate(json.loads(body))
        except (ValueError, RecursionError, pydantic.ValidationError):
            await self.app(scope, _replay(body, more, receive), send)
            return
        rt = self.runtime
        try:
            principal = await rt.auth.authenticate(authorization)
        except Exception:
            principal = None
        if principal is None or not principal.admin:
            await self.app(scope, _replay(body, more, receive), send)
            return
        try:
            published, replayed = await rt.events.publish(
                store_id, event.type, event.data, idempotency_key
            )
        except Exception as exc:
            await self._answer_error(scope, _replay(body, more, receive), send, exc)
            return
        if not replayed:
            metrics.PUBLISHED.inc()
        headers = [(b"content-length", b"%d" % len(published.body)), _JSON]
        if replayed:
            headers.append((b"idempotent-replayed", b"true"))
        await send(
            {"type": "http.response.start", "status": 200 if replayed else 202, "headers": headers}
        )
        await send({"type": "http.response.body", "body": published.body})

    async def _answer_error(
        self, scope: Scope, receive: Receive, send: Send, exc: Exception
    ) -> None:
        """The application's exception handler for ``exc`` answers, as it would for the route."""
        handlers: dict[Any, Any] = scope["app"].exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                response: Response = await handler(Request(scope, receive), exc)
                await response(scope, receive, send)
                return
        raise exc  # pragma: no cover - the application handles Exception


def _headers(scope: Scope) -> tuple[str | None, str | None, int | None, bool]:
    """(Authorization, Idempotency-Key, Content-Length, body read as JSON): each header's
    first value, as Starlette reads it (latin-1); a Content-Length that is not a number counts
    as absent. The body is JSON to the route when no Content-Type names JSON (BodyLimitMiddleware
    then makes it ``application/json``), or when the only one is ``application/json`` or
    ``application/*+json``; otherwise (``text/json``, several) the route decides."""
    authorization = idempotency_key = None
    length: int | None = None
    types: list[bytes] = []
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"idempotency-key":
            if idempotency_key is None:
                idempotency_key = value.decode("latin-1")
        elif name == b"content-length":
            if length is None:
                with contextlib.suppress(ValueError):
                    length = int(value)
        elif name == b"content-type":
            types.append(value.lower())
    as_json = not any(b"json" in t for t in types) or (
        len(types) == 1 and _JSON_TYPE.match(types[0].split(b";", 1)[0].strip())
    )
    return authorization, idempotency_key, length, bool(as_json)


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The body, read until it ends or passes the publish cap: (bytes, stopped early)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > PUBLISH_LIMIT:
            return b"".join(chunks), True


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that gives what was read as one message, then the rest from ``receive``."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay

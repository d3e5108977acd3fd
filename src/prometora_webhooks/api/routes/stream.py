"""GET /v1/events/stream: the store's new events as server-sent events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from ...domain.errors import AppError
from ...services.stream import EventStream
from ..deps import RuntimeDep, StoreIdDep
from ..schemas import ErrorEnvelope

router = APIRouter(prefix="/v1/events", tags=["events"])
KEEPALIVE_S = 15.0
# An open stream re-checks its token this often: a rotated API key stops it, as it stops
# every other request at once.
REAUTH_S = 2.0


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Event stream"},
        **{s: {"model": ErrorEnvelope} for s in (401, 404, 422)},
    },
)
async def stream(
    request: Request,
    rt: RuntimeDep,
    store_id: StoreIdDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """Each new published event of the store as ``id: evt_…``, ``event: <type>``,
    ``data: <the event JSON>`` (the body a standard endpoint receives); send ``Last-Event-ID``
    to resume after a disconnect. The stream starts with the comment ``: connected`` once
    it is following; when its token stops being valid (e.g. a rotated API key) it sends
    ``event: error`` with the error envelope and ends."""
    await rt.stores.get(store_id)  # an unknown store is a 404, not a silent stream
    authorization = request.headers.get("authorization")
    scope = request.query_params.get("store_id")
    events = EventStream(rt.db)
    after = await events.start_after(store_id, last_event_id)

    async def still_allowed() -> AppError | None:
        try:
            principal = await rt.auth.authenticate(authorization)
            principal.store_scope(scope)
        except AppError as exc:
            return exc
        return None

    async def body() -> AsyncIterator[bytes]:
        yield b": connected\n\n"
        last_sent = last_auth = time.monotonic()
        async with aclosing(events.follow(store_id, after)) as batches:
            async for batch in batches:
                if await request.is_disconnected():
                    return
                if time.monotonic() - last_auth >= REAUTH_S:
                    last_auth = time.monotonic()
                    refused = await still_allowed()
                    if refused is not None:
                        envelope = {"error": {"code": refused.code, "message": refused.message}}
                        yield b"event: error\ndata: %s\n\n" % orjson.dumps(envelope)
                        return
                for ev in batch:
                    yield b"id: %s\nevent: %s\ndata: %s\n\n" % (
                        ev.id.encode(),
                        ev.type.encode(),
                        ev.body,
                    )
                    last_sent = time.monotonic()
                if time.monotonic() - last_sent > KEEPALIVE_S:
                    yield b": keep-alive\n\n"
                    last_sent = time.monotonic()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

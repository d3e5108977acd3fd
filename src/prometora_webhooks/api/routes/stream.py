"""GET /v1/events/stream: the store's new events as server-sent events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from ...services.stream import EventStream
from ..deps import RuntimeDep, StoreIdDep

router = APIRouter(prefix="/v1/events", tags=["events"])
KEEPALIVE_S = 15.0


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Event stream"}},
)
async def stream(
    request: Request,
    rt: RuntimeDep,
    store_id: StoreIdDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """Each new published event of the store as ``id: evt_…``, ``event: <type>``,
    ``data: <the event JSON>``; send ``Last-Event-ID`` to resume after a disconnect."""
    events = EventStream(rt.db)
    after = await events.start_after(store_id, last_event_id)

    async def body() -> AsyncIterator[bytes]:
        yield b": connected\n\n"
        last_sent = time.monotonic()
        async for batch in events.follow(store_id, after):
            if await request.is_disconnected():
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

"""The live stream of a store's published events (server-sent events, for `listen`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..domain.models import Event
from ..domain.timefmt import now_ms
from ..storage import events as event_q
from ..storage.database import Database

POLL_S = 0.25
BATCH = 200


class EventStream:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start_after(self, store_id: str, last_event_id: str | None) -> tuple[int, str]:
        """Resume after ``last_event_id`` when given (and known), else start from now."""
        if last_event_id:
            async with self._db.read() as conn:
                ev = await event_q.get(conn, last_event_id, store_id)
            if ev is not None:
                return ev.created_at, ev.id
        return now_ms(), ""

    async def follow(self, store_id: str, after: tuple[int, str]) -> AsyncIterator[list[Event]]:
        """Yield batches of new events (an empty batch now and then, for keep-alives)."""
        while True:
            async with self._db.read() as conn:
                batch = await event_q.published_after(conn, store_id, after, BATCH)
            if batch:
                after = (batch[-1].created_at, batch[-1].id)
            yield batch
            if len(batch) < BATCH:
                await asyncio.sleep(POLL_S)

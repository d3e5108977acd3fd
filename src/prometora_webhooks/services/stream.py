"""The live stream of a store's published events (server-sent events, for `listen`).

Events are ordered by ``(created_at, id)``, but they do not become visible in that order: ids
are random, so a later event can sort before one already sent in the same millisecond, and an
event's time is taken before its transaction commits (group commit, several API processes),
so it can appear after a younger one. A cursor that only moved forward would skip both. The
stream therefore re-reads a window of ``SETTLE_MS`` behind the newest time it has passed,
remembers which ids in that window it has sent, and only moves its floor forward once the
window has settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from ..domain.models import Event
from ..domain.timefmt import now_ms
from ..storage import events as event_q
from ..storage.database import Database

POLL_S = 0.25
BATCH = 200
# How long after its ``created_at`` an event may still commit and be streamed.
SETTLE_MS = 5_000


class EventStream:
    def __init__(self, db: Database, *, settle_ms: int = SETTLE_MS) -> None:
        self._db = db
        self._settle_ms = settle_ms

    async def start_after(self, store_id: str, last_event_id: str | None) -> tuple[int, str]:
        """Resume after ``last_event_id`` when given (and the store's), else start from now."""
        if last_event_id:
            async with self._db.read() as conn:
                ev = await event_q.get(conn, last_event_id, store_id)
            if ev is not None:
                return ev.created_at, ev.id
        return now_ms(), ""

    async def follow(
        self, store_id: str, after: tuple[int, str]
    ) -> AsyncGenerator[list[Event], None]:
        """Yield batches of new events, each event once (an empty batch now and then, for
        keep-alives). ``after`` is a position in ``(created_at, id)`` order: only events after
        it are sent."""
        floor = after  # every event at or before it was sent, or predates the stream
        sent: dict[str, int] = {}  # ids sent after ``floor``, with their created_at
        while True:
            fresh: list[Event] = []
            cursor, full = floor, False
            while not full:
                async with self._db.read() as conn:
                    rows = await event_q.published_after(conn, store_id, cursor, BATCH)
                for ev in rows:
                    if ev.id not in sent:
                        sent[ev.id] = ev.created_at
                        fresh.append(ev)
                if len(rows) < BATCH:
                    break
                cursor = (rows[-1].created_at, rows[-1].id)
                full = len(fresh) >= BATCH
            horizon = now_ms() - self._settle_ms
            if horizon > floor[0]:
                floor = (horizon, "")  # from now on: created_at >= horizon
                sent = {i: c for i, c in sent.items() if c >= horizon}
            yield fresh
            if not full:
                await asyncio.sleep(POLL_S)

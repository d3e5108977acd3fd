"""Publishing events: validate, store, and queue one delivery per subscribed endpoint."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from ..domain import ids
from ..domain.catalog import Catalog
from ..domain.errors import NotFound, ValidationFailed
from ..domain.models import Event
from ..domain.plans import has_webhooks
from ..domain.timefmt import now_ms, rfc3339
from ..storage import events as event_q
from ..storage import queue
from ..storage import stores as store_q
from ..storage.database import Database
from .notify import Notifier

IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000
MAX_IDEMPOTENCY_KEY = 255


def encode_event(event_id: str, type_: str, created_ms: int, data: Any) -> bytes:
    """The exact bytes every endpoint receives, for every attempt."""
    try:
        return orjson.dumps(
            {"id": event_id, "type": type_, "created": rfc3339(created_ms), "data": data}
        )
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise ValidationFailed(f"data cannot be encoded as JSON: {exc}") from None


class EventService:
    def __init__(self, db: Database, catalog: Catalog, notifier: Notifier) -> None:
        self._db = db
        self._catalog = catalog
        self._notifier = notifier

    async def publish(
        self, store_id: str, type_: str, data: Any, idempotency_key: str | None = None
    ) -> tuple[Event, bool]:
        """Store the event and its deliveries durably; return (event, replayed)."""
        self._catalog.validate(type_, data)
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValidationFailed(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        now = now_ms()
        event_id = ids.new_id(ids.EVENT)
        ev = Event(event_id, store_id, type_, now, encode_event(event_id, type_, now, data))
        try:
            queued, replay = await self._store(ev, idempotency_key, now)
        except IntegrityError:
            # A concurrent request with the same Idempotency-Key won the race.
            queued, replay = await self._store(ev, idempotency_key, now)
        if replay is not None:
            return replay, True
        if queued:
            self._notifier.notify()
        return ev, False

    async def _store(self, ev: Event, key: str | None, now: int) -> tuple[int, Event | None]:
        async with self._db.write() as conn:
            store = await store_q.get(conn, ev.store_id)
            if store is None:
                raise NotFound(f"no store {ev.store_id}")
            if key is not None:
                first = await event_q.by_idempotency_key(conn, ev.store_id, key)
                if first is not None:
                    if first.created_at >= now - IDEMPOTENCY_WINDOW_MS:
                        return 0, first
                    await event_q.forget_idempotency_key(conn, first.id)
            await event_q.insert(conn, ev, key)
            queued = await event_q.fan_out(conn, ev, now) if has_webhooks(store.plan) else 0
            if queued:
                await queue.announce(conn)
        return queued, None

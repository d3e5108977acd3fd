"""The delivery log, test sends and resends of one endpoint."""

from __future__ import annotations

from ..domain import ids
from ..domain.catalog import Catalog
from ..domain.errors import NotFound, ValidationFailed
from ..domain.models import Attempt, Endpoint, Event, Page, Trigger
from ..domain.plans import require_webhooks
from ..domain.timefmt import now_ms
from ..storage import attempts as attempt_q
from ..storage import endpoints as ep_q
from ..storage import events as event_q
from ..storage import queue
from ..storage import stores as store_q
from ..storage.database import Database
from .events import encode_event
from .notify import Notifier

MAX_RECOVER = 10_000


class DeliveryService:
    def __init__(self, db: Database, catalog: Catalog, notifier: Notifier) -> None:
        self._db = db
        self._catalog = catalog
        self._notifier = notifier

    async def attempts(
        self, store_id: str, endpoint_id: str, limit: int, starting_after: str | None
    ) -> Page[Attempt]:
        async with self._db.read() as conn:
            if await ep_q.get(conn, endpoint_id, store_id) is None:
                raise NotFound(f"no endpoint {endpoint_id}")
            after = None
            if starting_after:
                cursor = await attempt_q.get(conn, starting_after)
                if cursor is None or cursor.endpoint_id != endpoint_id:
                    raise ValidationFailed("starting_after is not an attempt of this endpoint")
                after = (cursor.attempted_at, cursor.id)
            rows = await attempt_q.list_page(conn, endpoint_id, limit + 1, after)
        return Page(rows[:limit], len(rows) > limit)

    async def _manual_target(self, store_id: str, endpoint_id: str) -> Endpoint:
        async with self._db.read() as conn:
            ep = await ep_q.get(conn, endpoint_id, store_id)
            store = await store_q.get(conn, store_id)
        if ep is None or store is None:
            raise NotFound(f"no endpoint {endpoint_id}")
        require_webhooks(store.plan)
        return ep

    async def send_test(self, store_id: str, endpoint_id: str, type_: str) -> str:
        """Queue the type's example event to this one endpoint; return the event id."""
        example = self._catalog.get(type_).example
        await self._manual_target(store_id, endpoint_id)
        now = now_ms()
        event_id = ids.new_id(ids.EVENT)
        ev = Event(event_id, store_id, type_, now, encode_event(event_id, type_, now, example))
        async with self._db.write() as conn:
            await event_q.insert(conn, ev, None, kind="test")
            await queue.enqueue(conn, endpoint_id, event_id, Trigger.MANUAL.value, now)
            await queue.announce(conn)
        self._notifier.notify()
        return event_id

    async def resend(self, store_id: str, endpoint_id: str, event_id: str) -> None:
        await self._manual_target(store_id, endpoint_id)
        async with self._db.write() as conn:
            if await event_q.get(conn, event_id, store_id) is None:
                raise NotFound(f"no event {event_id}")
            await queue.enqueue(conn, endpoint_id, event_id, Trigger.MANUAL.value, now_ms())
            await queue.announce(conn)
        self._notifier.notify()

    async def recover(self, store_id: str, endpoint_id: str, since_ms: int) -> int:
        """Queue again every event of the endpoint's types since ``since_ms`` that did not
        succeed there (within retention). Returns how many were queued."""
        ep = await self._manual_target(store_id, endpoint_id)
        if not ep.enabled:
            raise ValidationFailed("enable the endpoint before recovering missed events")
        now = now_ms()
        if since_ms > now:
            raise ValidationFailed("since must not be in the future")
        async with self._db.write() as conn:
            missed = await event_q.missed(
                conn, store_id, endpoint_id, ep.events, since_ms, MAX_RECOVER
            )
            await queue.enqueue_many(conn, endpoint_id, missed, Trigger.SCHEDULED.value, now)
            if missed:
                await queue.announce(conn)
        if missed:
            self._notifier.notify()
        return len(missed)

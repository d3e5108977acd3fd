"""Publishing events: validate, store, and queue one delivery per subscribed endpoint.

Publishes are group-committed: concurrent requests wait on one writer task that stores a
whole batch (events, their deliveries, the wake-up) in a single transaction, so one fsync
serves many requests. Each caller still gets its 202 only after its event is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
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
from ..storage.database import Database
from .notify import Notifier

log = logging.getLogger("prometora_webhooks.publish")

IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000
MAX_IDEMPOTENCY_KEY = 255
MAX_BATCH = 500


def encode_event(event_id: str, type_: str, created_ms: int, data: Any) -> bytes:
    """The exact bytes every endpoint receives, for every attempt."""
    try:
        return orjson.dumps(
            {"id": event_id, "type": type_, "created": rfc3339(created_ms), "data": data}
        )
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise ValidationFailed(f"data cannot be encoded as JSON: {exc}") from None


@dataclass(slots=True)
class _Pending:
    event: Event
    key: str | None
    done: asyncio.Future[Event | None] = field(repr=False)  # None: stored; Event: the replay


class EventService:
    def __init__(self, db: Database, catalog: Catalog, notifier: Notifier) -> None:
        self._db = db
        self._catalog = catalog
        self._notifier = notifier
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def publish(
        self, store_id: str, type_: str, data: Any, idempotency_key: str | None = None
    ) -> tuple[Event, bool]:
        """Store the event and its deliveries durably; return (event, replayed).

        A repeated Idempotency-Key (within 24 h) returns the first event whatever the body.
        """
        key = idempotency_key
        if key is not None:
            if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
                raise ValidationFailed(
                    f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
                )
            first = await self._replay(store_id, key)
            if first is not None:
                return first, True
        self._catalog.validate(type_, data)
        now = now_ms()
        event_id = ids.new_id(ids.EVENT)
        ev = Event(event_id, store_id, type_, now, encode_event(event_id, type_, now, data))
        done: asyncio.Future[Event | None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(ev, key, done))
        self._ensure_writer()
        self._wake.set()
        replay = await done
        return (replay, True) if replay is not None else (ev, False)

    async def _replay(self, store_id: str, key: str) -> Event | None:
        async with self._db.read() as conn:
            first = await event_q.by_idempotency_key(conn, store_id, key)
        if first is not None and first.created_at >= now_ms() - IDEMPOTENCY_WINDOW_MS:
            return first
        return None

    # -- the group-commit writer ------------------------------------------------------------
    def _ensure_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="pw-publish")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await self._store_batch(batch)
                except IntegrityError:
                    # An Idempotency-Key raced with another process: store one at a time.
                    for p in batch:
                        await self._store_one(p)
                except Exception as exc:
                    for p in batch:
                        if not p.done.done():
                            p.done.set_exception(exc)

    async def _store_one(self, p: _Pending) -> None:
        try:
            await self._store_batch([p])
        except IntegrityError:
            assert p.key is not None
            first = await self._replay(p.event.store_id, p.key)
            if not p.done.done():
                if first is not None:
                    p.done.set_result(first)
                else:
                    p.done.set_exception(ValidationFailed("Idempotency-Key conflict; retry"))
        except Exception as exc:
            if not p.done.done():
                p.done.set_exception(exc)

    async def _store_batch_at_once(self, batch: list[_Pending]) -> None:
        """PostgreSQL, a batch without Idempotency-Keys: one read (plans and subscribers), then
        one statement that stores the events and their deliveries and wakes the workers. Four
        round trips fewer than the transaction below, which matters most when publishes come
        one at a time."""
        now = now_ms()
        async with self._db.autocommit() as conn:
            plans, routes = await event_q.routes(conn, [p.event for p in batch])
            stored = [p for p in batch if p.event.store_id in plans]
            queued = 0
            if stored:
                evs = [p.event for p in stored]
                routed = [e for e in evs if has_webhooks(plans[e.store_id])]
                queued = await event_q.store_published(conn, evs, routed, routes, now)
        if queued:
            self._notifier.notify()
        for p in batch:
            if p.done.done():
                continue
            if p.event.store_id in plans:
                p.done.set_result(None)
            else:
                p.done.set_exception(NotFound(f"no store {p.event.store_id}"))

    async def _store_batch(self, batch: list[_Pending]) -> None:
        if not self._db.is_sqlite and all(p.key is None for p in batch):
            await self._store_batch_at_once(batch)
            return
        now = now_ms()
        outcome: dict[int, Event | Exception | None] = {}
        async with self._db.write() as conn:
            plans = await event_q.store_plans(conn, {p.event.store_id for p in batch})
            keys_seen: dict[tuple[str, str], Event] = {}
            to_insert: list[_Pending] = []
            for i, p in enumerate(batch):
                ev = p.event
                if ev.store_id not in plans:
                    outcome[i] = NotFound(f"no store {ev.store_id}")
                    continue
                if p.key is not None:
                    seen = keys_seen.get((ev.store_id, p.key))
                    if seen is None:
                        seen = await event_q.by_idempotency_key(conn, ev.store_id, p.key)
                        if seen is not None and seen.created_at < now - IDEMPOTENCY_WINDOW_MS:
                            await event_q.forget_idempotency_key(conn, seen.id)
                            seen = None
                    if seen is not None:
                        outcome[i] = seen
                        continue
                    keys_seen[(ev.store_id, p.key)] = ev
                outcome[i] = None
                to_insert.append(p)
            await event_q.insert_many(conn, [(p.event, p.key) for p in to_insert])
            routed = [p.event for p in to_insert if has_webhooks(plans[p.event.store_id])]
            queued = await event_q.fan_out_many(conn, routed, now)
            if queued:
                await queue.announce(conn)
        if queued:
            self._notifier.notify()
        for i, p in enumerate(batch):
            result = outcome[i]
            if p.done.done():
                continue
            if isinstance(result, Exception):
                p.done.set_exception(result)
            else:
                p.done.set_result(result)

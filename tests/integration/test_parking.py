"""The worker's bookkeeping around stalled endpoints, on real databases: parking a stalled
endpoint's backlog (every due row, in chunks, nothing of other endpoints), its new events
queued already parked until a success, and the idle wait's cached next due time when work is
scheduled during its read."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from prometora_webhooks.config import Settings
from prometora_webhooks.crypto import SecretBox
from prometora_webhooks.delivery import worker as worker_mod
from prometora_webhooks.delivery.worker import Worker
from prometora_webhooks.domain.models import Event
from prometora_webhooks.domain.timefmt import now_ms
from prometora_webhooks.services.endpoints import EndpointChanges
from prometora_webhooks.services.notify import Notifier, PgNotifier
from prometora_webhooks.services.stores import StoreService
from prometora_webhooks.storage import driver, queue
from prometora_webhooks.storage import endpoints as ep_q
from prometora_webhooks.storage import events as event_q
from prometora_webhooks.storage.database import Database, listen_dsn
from tests.support.databases import ip_endpoint_service, run_with_databases

STUCK_ROWS = worker_mod.PARK_CHUNK * 2 + 7  # three chunks, the last one short


async def _due(db: Database, now: int) -> dict[str, int]:
    async with db.read() as conn:
        rows = await driver.fetchall(
            conn,
            "SELECT endpoint_id, count(*) FROM deliveries WHERE available_at <= ?"
            " GROUP BY endpoint_id",
            (now,),
        )
        return {r[0]: r[1] for r in rows}


def test_a_stalled_endpoints_whole_backlog_is_parked_in_chunks(db_url: str) -> None:
    async def body(db: Database) -> None:
        settings = Settings(database_url=db_url, delivery_timeout=10)
        worker = Worker(settings, db, SecretBox(secrets.token_bytes(32)), Notifier())
        now = 1_000_000
        async with db.write() as conn:
            stuck = [f"e{i}" for i in range(STUCK_ROWS)]
            await queue.enqueue_many(conn, "we_stuck", stuck, "scheduled", now - 5)
            await queue.enqueue_many(conn, "we_fine", ["f1", "f2"], "scheduled", now - 5)
        # What the claim loop knows: not at full width (no success yet), and at its narrow cap
        # for longer than it takes.
        worker._saturated_since = {"we_stuck": now - 60_000}
        assert worker._stalled(now) == ["we_stuck"]

        await worker._park(now)
        assert await _due(db, now) == {"we_fine": 2}
        assert await _due(db, now + 30_000) == {"we_fine": 2, "we_stuck": STUCK_ROWS}
        # Parked once: not looked at again within PARK_EVERY_MS.
        assert worker._stalled(now + worker_mod.PARK_EVERY_MS - 1) == []
        assert worker._stalled(now + worker_mod.PARK_EVERY_MS) == ["we_stuck"]

    run_with_databases(db_url, body)


async def _publish(db: Database, store_id: str, event_id: str, now: int) -> dict[str, int]:
    """Fan one order.created event out; when each endpoint's delivery is due."""
    async with db.write() as conn:
        ev = Event(event_id, store_id, "order.created", now, b"{}")
        await event_q.fan_out_many(conn, [ev], now)
        rows = await driver.fetchall(
            conn, "SELECT endpoint_id, available_at FROM deliveries WHERE event_id = ?", (event_id,)
        )
    return {r[0]: r[1] for r in rows}


def test_a_parked_endpoints_new_events_are_queued_parked_until_a_success(db_url: str) -> None:
    """Once a worker parks a stalled endpoint's backlog, its new events are queued due at the
    end of that parking (no worker has to find and park them again) while other endpoints'
    are due at once; a success ends it, and so does a new address."""

    async def body(db: Database) -> None:
        box = SecretBox(secrets.token_bytes(32))
        store, _ = await StoreService(db).create("Parking Shop", "business")
        svc = ip_endpoint_service(db, box)
        stuck = (await svc.create(store.id, "https://127.0.0.1:9/stuck", ["order.created"]))[0].id
        fine = (await svc.create(store.id, "https://127.0.0.1:9/fine", ["order.created"]))[0].id
        worker = Worker(Settings(database_url=db_url, delivery_timeout=10), db, box, Notifier())
        t = now_ms()
        until = t + 3 * 10_000  # parked for 3 x the delivery timeout
        assert await _publish(db, store.id, "evt_before", t) == {stuck: t, fine: t}

        worker._saturated_since = {stuck: t - 60_000}
        await worker._park(t)
        assert await _due(db, t) == {fine: 1}
        assert await _publish(db, store.id, "evt_during", t + 1) == {stuck: until, fine: t + 1}
        # A parking that is over delays nothing.
        later = until + 1
        assert await _publish(db, store.id, "evt_later", later) == {stuck: later, fine: later}

        # A failure keeps the parking; a success (the counter reset) ends it.
        async with db.write() as conn:
            await ep_q.apply_counters(conn, [(stuck, False, 1, t)])
        assert (await _publish(db, store.id, "evt_failed", t + 2))[stuck] == until
        async with db.write() as conn:
            await ep_q.apply_counters(conn, [(stuck, True, 0, t)])
        assert (await _publish(db, store.id, "evt_ok", t + 3))[stuck] == t + 3

        # Parked again, then given a new address by its owner: due at once.
        worker._parked_at.clear()
        await worker._park(t + 4)
        assert (await _publish(db, store.id, "evt_parked", t + 5))[stuck] == until + 4
        await svc.update(store.id, stuck, EndpointChanges(url="https://127.0.0.1:9/moved"))
        assert (await _publish(db, store.id, "evt_moved", t + 6))[stuck] == t + 6

    run_with_databases(db_url, body)


def test_the_idle_wait_survives_work_scheduled_while_it_reads(db_url: str, db_kind: str) -> None:
    """The recorder and the park task forget the cached next due time when they schedule work.
    If that happens while the idle wait is reading it, the wait must still come back with a
    duration (it used to index the cleared cache: a TypeError every claim loop took for a
    database outage, sleeping 0.5 s and more, while stalled endpoints were failing)."""
    if db_kind != "postgresql":
        pytest.skip(
            "on SQLite nothing wakes a worker from another process, so the idle wait is the "
            "poll interval and reads nothing"
        )

    async def body(db: Database) -> None:
        notifier = PgNotifier(listen_dsn(db_url))
        await notifier.start()
        settings = Settings(database_url=db_url)
        worker = Worker(settings, db, SecretBox(secrets.token_bytes(32)), notifier)
        try:
            async with asyncio.timeout(10):
                while not notifier.cross_process:  # noqa: ASYNC110 (a property, no event to await)
                    await asyncio.sleep(0.01)
            now = now_ms()
            async with db.write() as conn:
                await queue.enqueue(conn, "we_later", "e_later", "scheduled", now + 3_000)
            forgets = 0
            for _ in range(20):
                wait = asyncio.create_task(worker._idle_wait())
                while not wait.done():  # forget at every turn of the loop the read gives up
                    worker._forget_next_due()
                    forgets += 1
                    await asyncio.sleep(0)
                assert 1.0 <= await wait <= worker_mod.MAX_IDLE_S
            assert forgets > 20  # the reads did give the loop turns to forget in
        finally:
            await notifier.close()

    run_with_databases(db_url, body)

"""The fan-out on its own (both databases): one queue row per event and subscribed, enabled
endpoint, due now or when the endpoint's parking ends, queued in the events' order."""

from __future__ import annotations

import asyncio

from prometora_webhooks.domain.models import Event
from prometora_webhooks.storage import events as event_q
from prometora_webhooks.storage.database import Database
from prometora_webhooks.storage.tables import endpoints, subscriptions
from tests.support.databases import run_with_databases

NOW = 1_000_000

# endpoint id -> (store, subscribed types, enabled, parked_until)
ENDPOINTS: dict[str, tuple[str, list[str], bool, int | None]] = {
    "we_a": ("s1", ["order.created", "seller.registered"], True, None),
    "we_b": ("s1", ["order.created"], True, NOW + 5_000),  # parked: due when it ends
    "we_c": ("s1", ["order.created"], False, None),  # disabled: nothing
    "we_d": ("s2", ["order.created"], True, NOW - 5_000),  # parking over: due now
    "we_e": ("s2", ["seller.registered"], True, None),
}


async def _setup(db: Database) -> None:
    async with db.write() as conn:
        for ep, (store, types, enabled, parked) in ENDPOINTS.items():
            await conn.execute(
                endpoints.insert().values(
                    id=ep,
                    store_id=store,
                    url=f"https://example.com/{ep}",
                    description="",
                    events="[]",
                    format="standard",
                    header_names="[]",
                    enabled=enabled,
                    consecutive_failures=0,
                    parked_until=parked,
                    created_at=0,
                    updated_at=0,
                )
            )
            for t in types:
                await conn.execute(
                    subscriptions.insert().values(endpoint_id=ep, event_type=t, store_id=store)
                )


def _ev(i: int, store: str, type_: str) -> Event:
    return Event(f"evt_{i}", store, type_, NOW, b"{}")


def test_fan_out_queues_one_row_per_subscribed_enabled_endpoint_in_event_order(
    db_url: str,
) -> None:
    batch = [
        _ev(0, "s1", "order.created"),
        _ev(1, "s2", "seller.registered"),
        _ev(2, "s1", "seller.registered"),
        _ev(3, "s2", "order.created"),
        _ev(4, "s3", "order.created"),  # a store with no endpoints
        _ev(5, "s1", "order.created"),
    ]

    async def body(db: Database) -> tuple[int, list[tuple[str, str, int, int, str]]]:
        await _setup(db)
        async with db.write() as conn:
            n = await event_q.fan_out_many(conn, batch, NOW)
        async with db.read() as conn:
            rows = await conn.exec_driver_sql(
                'SELECT event_id, endpoint_id, available_at, attempt, "trigger"'
                " FROM deliveries ORDER BY id"
            )
            return n, [tuple(r) for r in rows]

    n, rows = run_with_databases(db_url, body)
    expected = {
        ("evt_0", "we_a", NOW),
        ("evt_0", "we_b", NOW + 5_000),
        ("evt_1", "we_e", NOW),
        ("evt_2", "we_a", NOW),
        ("evt_3", "we_d", NOW),
        ("evt_5", "we_a", NOW),
        ("evt_5", "we_b", NOW + 5_000),
    }
    assert n == len(rows) == len(expected)
    assert {(r[0], r[1], r[2]) for r in rows} == expected
    assert all(r[3] == 1 and r[4] == "scheduled" for r in rows)
    # Queued in the events' order: each event's rows come after the previous event's.
    order = [int(r[0].removeprefix("evt_")) for r in rows]
    assert order == sorted(order)


def test_fan_out_of_events_nobody_subscribed_to_queues_nothing(db_url: str) -> None:
    async def body(db: Database) -> tuple[int, int]:
        await _setup(db)
        async with db.write() as conn:
            n = await event_q.fan_out_many(
                conn, [_ev(0, "s2", "seller.registered.unknown"), _ev(1, "s9", "x")], NOW
            )
        async with db.read() as conn:
            count = (await conn.exec_driver_sql("SELECT count(*) FROM deliveries")).scalar()
        return n, int(count or 0)

    assert run_with_databases(db_url, body) == (0, 0)


def test_a_publish_batch_stores_routes_and_refuses_per_event(db_url: str) -> None:
    """Through the publishing service (a batch of concurrent publishes, group-committed: on
    PostgreSQL one statement after one read): each event of an existing store is stored, those
    of a store whose plan has webhooks are queued for its subscribed, enabled endpoints, and
    an unknown store's event alone is refused."""
    from prometora_webhooks.domain.catalog import Catalog
    from prometora_webhooks.domain.errors import NotFound
    from prometora_webhooks.services.events import EventService
    from prometora_webhooks.services.notify import Notifier
    from prometora_webhooks.storage.tables import stores
    from tests.support.service import ORDER, SELLER

    plans = {"s1": "business", "s2": "free"}  # s2's plan has no webhooks
    sent = [
        ("s1", "order.created"),
        ("s2", "seller.registered"),  # stored, not queued (we_e is subscribed)
        ("s9", "order.created"),  # no such store
        ("s2", "order.created"),  # stored, not queued (we_d is subscribed)
        ("s1", "seller.registered"),
    ]

    async def body(db: Database) -> tuple[list[object], list[tuple[str, str]], set[str]]:
        await _setup(db)
        async with db.write() as conn:
            for sid, plan in plans.items():
                await conn.execute(
                    stores.insert().values(
                        id=sid, name=sid, plan=plan, api_key_hash=sid, created_at=0, updated_at=0
                    )
                )
        svc = EventService(db, Catalog.load(), Notifier())
        try:
            results = await asyncio.gather(
                *(
                    svc.publish(sid, t, ORDER if t == "order.created" else SELLER)
                    for sid, t in sent
                ),
                return_exceptions=True,
            )
        finally:
            await svc.close()
        ids = {r[0].id: r[0].store_id for r in results if isinstance(r, tuple)}
        async with db.read() as conn:
            queued = await conn.exec_driver_sql("SELECT event_id, endpoint_id FROM deliveries")
            pairs = [(ids[e], ep) for e, ep in queued]
            stored = await conn.exec_driver_sql("SELECT id FROM events")
            return results, pairs, {r[0] for r in stored}

    results, queued, stored = run_with_databases(db_url, body)
    assert isinstance(results[2], NotFound)
    published = [r for i, r in enumerate(results) if i != 2]
    assert all(isinstance(r, tuple) and r[1] is False for r in published)
    assert stored == {r[0].id for r in published if isinstance(r, tuple)}
    # s1: order.created -> we_a, we_b (we_c is disabled); seller.registered -> we_a.
    assert sorted(queued) == [("s1", "we_a"), ("s1", "we_a"), ("s1", "we_b")]

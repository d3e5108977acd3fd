"""The recorder's group commit on real databases: the attempt rows, the deliveries finished
(only where the recorder still holds the lease) or rescheduled, and the endpoints' counters,
latest start and parking."""

from __future__ import annotations

import secrets
from typing import Any

from prometora_webhooks.crypto import SecretBox
from prometora_webhooks.domain.outcomes import AttemptResult
from prometora_webhooks.services.recorder import Recorder
from prometora_webhooks.services.stores import StoreService
from prometora_webhooks.storage import driver, queue
from prometora_webhooks.storage import endpoints as ep_q
from prometora_webhooks.storage.database import Database
from prometora_webhooks.storage.queue import Claimed
from tests.support.databases import ip_endpoint_service, run_with_databases

T = 1_700_000_000_000


def _result(c: Claimed, store_id: str, ok: bool, started: int, token: str = "") -> AttemptResult:
    return AttemptResult(
        delivery_id=c.id,
        lease_token=token or c.lease_token,
        attempt_id=f"att_{c.event_id}",
        endpoint_id=c.endpoint_id,
        event_id=c.event_id,
        event_type="order.created",
        store_id=store_id,
        attempt=c.attempt,
        trigger=c.trigger,
        succeeded=ok,
        http_status=200 if ok else 500,
        response_time_ms=3,
        error=None if ok else "HTTP 500",
        response_body=b"ok",
        started_at=started,
    )


async def _state(db: Database, endpoint_ids: list[str]) -> dict[str, Any]:
    async with db.read() as conn:
        attempts = await driver.fetchall(
            conn, "SELECT event_id, status, attempt FROM attempts ORDER BY event_id", ()
        )
        left = await driver.fetchall(
            conn,
            "SELECT event_id, attempt, lease_token IS NULL FROM deliveries ORDER BY event_id",
            (),
        )
        eps = await driver.fetchall(
            conn,
            "SELECT id, consecutive_failures, last_triggered_at, parked_until FROM endpoints",
            (),
        )
    names = {ep: f"ep{i}" for i, ep in enumerate(endpoint_ids)}
    return {
        "attempts": [tuple(r) for r in attempts],
        "deliveries": [(r[0], r[1], bool(r[2])) for r in left],
        "endpoints": sorted((names[r[0]], r[1], r[2], r[3]) for r in eps),
    }


def test_a_batch_of_successes_and_a_mixed_batch_are_recorded(db_url: str) -> None:
    """Endpoint 0 had failed 3 times and was parked, endpoint 1 is fresh. First batch: only
    successes (one of them for a delivery whose lease another worker now holds: its row stays);
    then a mixed batch (a failure of endpoint 1: retried, its counter goes up)."""

    async def body(db: Database) -> dict[str, Any]:
        box = SecretBox(secrets.token_bytes(32))
        store, _ = await StoreService(db).create("Recorder Shop", "business")
        svc = ip_endpoint_service(db, box)
        eps = [
            (await svc.create(store.id, f"https://127.0.0.1:9/{n}", ["order.created"]))[0].id
            for n in ("a", "b")
        ]
        async with db.write() as conn:
            await ep_q.apply_counters(conn, [(eps[0], False, 3, T - 10)])
            await ep_q.park_new(conn, eps[0], T, T + 30_000)
            for i, ep in enumerate([eps[0], eps[0], eps[1], eps[1], eps[1]]):
                await queue.enqueue(conn, ep, f"e{i}", "scheduled", T - 1)
            claimed = await queue.claim(
                conn, T, T + 25_000, "tok", 10, room={}, default_room=10, scan=10
            )
        by_event = {c.event_id: c for c in claimed}
        recorder = Recorder(db, (60.0, 600.0), disable_after=10)
        first = [
            _result(by_event["e0"], store.id, True, T + 1),
            _result(by_event["e1"], store.id, True, T + 5),
            _result(by_event["e2"], store.id, True, T + 2),
            _result(by_event["e3"], store.id, True, T + 3, token="someone-else"),
        ]
        assert await recorder.record(first) == []
        mixed = [_result(by_event["e4"], store.id, False, T + 9)]
        assert await recorder.record(mixed) == []
        return {"eps": eps, **await _state(db, eps)}

    state = run_with_databases(db_url, body)
    assert state["attempts"] == [
        ("e0", "succeeded", 1),
        ("e1", "succeeded", 1),
        ("e2", "succeeded", 1),
        ("e3", "succeeded", 1),
        ("e4", "failed", 1),
    ]
    # e3's lease is someone else's: not finished here; e4 is due again as attempt 2.
    assert state["deliveries"] == [("e3", 1, False), ("e4", 2, True)]
    assert state["endpoints"] == [
        ("ep0", 0, T + 5, None),  # reset by its successes, parking over, latest start
        ("ep1", 1, T + 9, None),  # a success, then a failure
    ]

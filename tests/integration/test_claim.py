"""The claim query on its own (both databases): oldest first, at most each endpoint's room, and
rows over an endpoint's room left exactly as they were (not leased and given back)."""

from __future__ import annotations

from collections import Counter

import pytest

from prometora_webhooks.domain.models import Event
from prometora_webhooks.storage import events as event_q
from prometora_webhooks.storage import queue
from prometora_webhooks.storage.database import Database
from prometora_webhooks.storage.queue import Claimed
from tests.support.databases import run_with_databases

NOW = 1_000_000
LEASE = NOW + 60_000


async def _queue(db: Database, rows: list[tuple[str, int]]) -> None:
    """(endpoint id, available_at) rows, event ids e0, e1, … in the given order."""
    async with db.write() as conn:
        for i, (ep, at) in enumerate(rows):
            await queue.enqueue(conn, ep, f"e{i}", "scheduled", at)


async def _claim(db: Database, limit: int, **kw: object) -> list[Claimed]:
    async with db.write() as conn:
        return await queue.claim(conn, NOW, LEASE, "tok", limit, **kw)  # type: ignore[arg-type]


async def _leased(db: Database) -> list[tuple[str, str]]:
    async with db.read() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT event_id, available_at, lease_token FROM deliveries ORDER BY id"
        )
        return [(r[0], "leased" if r[2] else str(r[1])) for r in rows]


def test_claim_takes_each_endpoint_up_to_its_room_oldest_first(db_url: str) -> None:
    # a's rows are the oldest (10 of them), then b's and c's interleaved.
    rows = [("a", 100 + i) for i in range(10)]
    rows += [(("b", "c")[i % 2], 200 + i) for i in range(10)]
    rows += [("late", NOW + 1)]  # not due

    async def body(db: Database) -> tuple[list[Claimed], list[tuple[str, str]]]:
        await _queue(db, rows)
        got = await _claim(db, 100, room={"a": 3, "c": 1}, default_room=2, scan=100)
        return got, await _leased(db)

    got, state = run_with_databases(db_url, body)
    assert Counter(c.endpoint_id for c in got) == {"a": 3, "b": 2, "c": 1}
    # Oldest of each endpoint: a's first three, b's first two (e10, e12), c's first (e11).
    assert sorted(c.event_id for c in got) == sorted(["e0", "e1", "e2", "e10", "e12", "e11"])
    assert all(c.lease_token == "tok" for c in got)
    taken = {c.event_id for c in got}
    for event_id, status in state:
        if event_id in taken:
            assert status == "leased"
        else:  # untouched: still due at its own time, no lease
            idx = int(event_id[1:])
            assert status == str(rows[idx][1]), (event_id, status)


def test_claim_limit_scan_and_exclusions(db_url: str) -> None:
    rows = [(("a", "b", "c")[i % 3], 100 + i) for i in range(30)]

    async def body(db: Database) -> tuple[list[Claimed], list[Claimed], list[Claimed]]:
        await _queue(db, rows)
        # Only the 6 oldest due rows are looked at: two per endpoint, one each within room.
        scanned = await _claim(db, 100, room={}, default_room=1, scan=6)
        # b is left out; the limit stops at 4 (oldest first across a and c).
        limited = await _claim(db, 4, room={}, default_room=10, scan=100, exclude_endpoints=["b"])
        rest = await _claim(db, 100, room={}, default_room=100, scan=100)
        return scanned, limited, rest

    scanned, limited, rest = run_with_databases(db_url, body)
    assert sorted(c.event_id for c in scanned) == ["e0", "e1", "e2"]
    assert [c.event_id for c in sorted(limited, key=lambda c: int(c.event_id[1:]))] == [
        "e3",
        "e5",
        "e6",
        "e8",
    ]
    ids = {c.event_id for c in scanned + limited + rest}
    assert len(scanned) + len(limited) + len(rest) == len(ids) == 30  # each row once


def test_a_claim_outside_a_transaction_brings_the_bodies_and_leaves_the_session_alone(
    db_url: str, db_kind: str
) -> None:
    """PostgreSQL's worker claims with one autocommit statement that also returns the events'
    type and body (none for an event that is gone) and commits without waiting for the disk:
    the lease is committed (another connection sees it) and the connection, which goes back
    to the pool, still commits synchronously."""
    if db_kind != "postgresql":
        pytest.skip("SQLite claims in a write transaction and reads the bodies after it")

    async def body(
        db: Database,
    ) -> tuple[list[Claimed], dict[str, tuple[str | None, bytes]], str, list[tuple[str, str]]]:
        await _queue(db, [("a", 100), ("b", 101), ("a", NOW + 1)])
        async with db.write() as conn:
            await event_q.insert(conn, Event("e0", "s", "order.created", 1, b'{"x":1}'), None)
        async with db.autocommit() as conn:
            got = await queue.claim(
                conn, NOW, LEASE, "tok", 10, room={}, default_room=5, scan=10, with_events=True
            )
            setting = (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar_one()
        bodies = {c.event_id: (c.event_type, c.body) for c in got if c.body is not None}
        return got, bodies, setting, await _leased(db)

    got, bodies, setting, state = run_with_databases(db_url, body)
    assert sorted(c.event_id for c in got) == ["e0", "e1"]
    assert bodies == {"e0": ("order.created", b'{"x":1}')}  # e1 has no event row
    assert setting == "on"
    assert state == [("e0", "leased"), ("e1", "leased"), ("e2", str(NOW + 1))]

"""The delivery queue: the hot queries (claim, finish, retry, drop) kept together.

A row is claimable when ``available_at <= now``. Claiming sets ``available_at`` to the end of
the lease and a fresh ``lease_token``; only the holder of that token may finish or reschedule
the row. A worker that dies simply lets its lease run out, and another worker claims the row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import driver
from .tables import deliveries, endpoints


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    endpoint_id: str
    event_id: str
    attempt: int
    trigger: str
    lease_token: str
    # Claimed ``with_events`` (PostgreSQL): the event's type and body (None if it is gone).
    event_type: str | None = None
    body: bytes | None = None


async def enqueue(
    conn: AsyncConnection, endpoint_id: str, event_id: str, trigger: str, available_at: int
) -> None:
    await conn.execute(
        deliveries.insert().values(
            endpoint_id=endpoint_id,
            event_id=event_id,
            attempt=1,
            trigger=trigger,
            available_at=available_at,
        )
    )


async def enqueue_many(
    conn: AsyncConnection, endpoint_id: str, event_ids: Sequence[str], trigger: str, at: int
) -> None:
    if event_ids:
        await conn.execute(
            deliveries.insert(),
            [
                {
                    "endpoint_id": endpoint_id,
                    "event_id": e,
                    "attempt": 1,
                    "trigger": trigger,
                    "available_at": at,
                }
                for e in event_ids
            ],
        )


# Claiming, in one statement: lock (PostgreSQL: skipping rows other workers hold) the oldest
# ``scan`` due rows, number each endpoint's rows among them, and lease the oldest ``limit`` of
# those within their endpoint's room (the caller's per-endpoint in-flight allowance). Rows over
# an endpoint's room are only looked at, never written: a lease given back would cost an UPDATE,
# new index entries, and a second claim of the same row. The room and the endpoints left out
# are passed as JSON, so that the statement's text (and its prepared plan) is the same whatever
# their number.
_CLAIM_SQL = (
    "WITH room (endpoint_id, n) AS ({room}),"
    " cand AS (SELECT id, endpoint_id, available_at FROM deliveries"
    " WHERE available_at <= ?{exclude} ORDER BY available_at LIMIT ?{lock}),"
    " ranked AS (SELECT id, endpoint_id, available_at, row_number() OVER"
    " (PARTITION BY endpoint_id ORDER BY available_at, id) AS rn FROM cand),"
    " picked AS (SELECT ranked.id FROM ranked"
    " LEFT JOIN room ON room.endpoint_id = ranked.endpoint_id"
    " WHERE ranked.rn <= COALESCE(room.n, ?) ORDER BY ranked.available_at LIMIT ?)"
    " UPDATE deliveries SET available_at = ?, lease_token = ?"
    " FROM picked{nosync} WHERE deliveries.id = picked.id"
    ' RETURNING {t}id, {t}endpoint_id, {t}event_id, {t}attempt, {t}"trigger"{more}'
)
# PostgreSQL: each claimed row also brings its event's type and body (NULL if the event is
# gone), so that no query for the bodies follows the claim. And the statement's commit (it is
# a transaction of its own) does not wait for the disk: a lease lost in a database crash only
# makes the row claimable again (at least once, as when a worker dies), and any later
# durable commit (the attempt's record, a publish) flushes the log up to and including it.
_NO_SYNC = ", (SELECT set_config('synchronous_commit', 'off', true)) AS nosync"
_WITH_EVENT = (
    ", (SELECT type FROM events WHERE events.id = deliveries.event_id),"
    " (SELECT body FROM events WHERE events.id = deliveries.event_id)"
)
_DIALECT = {  # the JSON parts: (room from an object, a list of endpoint ids)
    True: (
        "SELECT key, CAST(value AS INTEGER) FROM json_each_text(CAST(? AS json))",
        "SELECT json_array_elements_text(CAST(? AS json))",
    ),
    False: ("SELECT key, value FROM json_each(?)", "SELECT value FROM json_each(?)"),
}


async def claim(
    conn: AsyncConnection,
    now: int,
    lease_until: int,
    token: str,
    limit: int,
    *,
    room: Mapping[str, int],
    default_room: int,
    scan: int,
    exclude_endpoints: Sequence[str] = (),
    with_events: bool = False,
) -> list[Claimed]:
    """Lease up to ``limit`` due rows, oldest first, at most ``room[endpoint]`` (else
    ``default_room``) per endpoint, from the oldest ``scan`` due rows; ``exclude_endpoints``
    are left out altogether.

    ``with_events`` (PostgreSQL, outside a transaction: ``Database.autocommit()``): each row
    also brings its event's type and body, and the statement's commit does not wait for the
    disk (the connection's own setting is left alone)."""
    pg = driver.is_postgres(conn)
    assert pg or not with_events
    room_sql, list_sql = _DIALECT[pg]
    sql = _CLAIM_SQL.format(
        room=room_sql,
        exclude=f" AND endpoint_id NOT IN ({list_sql})" if exclude_endpoints else "",
        # Lock the chosen rows; rows other workers hold are skipped, never waited on.
        lock=" FOR UPDATE SKIP LOCKED" if pg else "",
        t="deliveries." if pg else "",  # PostgreSQL: "id" alone would also name picked.id
        more=_WITH_EVENT if with_events else "",
        nosync=_NO_SYNC if with_events else "",
    )
    exclude = (orjson.dumps(list(exclude_endpoints)).decode(),) if exclude_endpoints else ()
    params = (
        orjson.dumps(dict(room)).decode(),
        now,
        *exclude,
        scan,
        default_room,
        limit,
        lease_until,
        token,
    )
    rows = await driver.fetchall(conn, sql, params)
    if not with_events:
        return [Claimed(r[0], r[1], r[2], r[3], r[4], token) for r in rows]
    return [
        Claimed(r[0], r[1], r[2], r[3], r[4], token, r[5], None if r[6] is None else bytes(r[6]))
        for r in rows
    ]


async def park(conn: AsyncConnection, endpoint_id: str, now: int, until: int, limit: int) -> int:
    """Move up to ``limit`` of an endpoint's due rows (oldest first) to ``until``; how many.

    For an endpoint that is failing and at its in-flight cap: its due rows could not be claimed
    anyway, and every claim would otherwise step over them in the due index."""
    skip_locked = " FOR UPDATE SKIP LOCKED" if driver.is_postgres(conn) else ""
    return await driver.execute(
        conn,
        "UPDATE deliveries SET available_at = ? WHERE id IN (SELECT id FROM deliveries"
        " WHERE endpoint_id = ? AND available_at <= ? ORDER BY available_at"
        f" LIMIT ?{skip_locked})",
        (until, endpoint_id, now, limit),
    )


async def unpark(conn: AsyncConnection, endpoint_id: str, until: int, now: int) -> int:
    """An endpoint answers again: its rows parked until ``until`` (every row one parking moved
    gets that same time, and so do those queued parked) are due ``now``; how many."""
    return await driver.execute(
        conn,
        "UPDATE deliveries SET available_at = ? WHERE available_at = ? AND endpoint_id = ?",
        (now, until, endpoint_id),
    )


FINISH_ARRAYS = (
    "DELETE FROM deliveries USING unnest(?::bigint[], ?::text[]) AS t (id, token)"
    " WHERE deliveries.id = t.id AND deliveries.lease_token = t.token"
)


async def finish(conn: AsyncConnection, items: Sequence[tuple[int, str]]) -> None:
    """Remove rows (id, lease token) whose delivery is over: delivered, exhausted or dropped."""
    await driver.execute_rows(
        conn,
        items,
        per_row="DELETE FROM deliveries WHERE id = ? AND lease_token = ?",
        arrays=FINISH_ARRAYS,
    )


async def reschedule(conn: AsyncConnection, items: Sequence[tuple[int, str, int, int]]) -> None:
    """(id, lease token, next attempt number, due at): release the lease for a later retry."""
    if items:
        await conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id == bindparam("b_id"),
                deliveries.c.lease_token == bindparam("b_token"),
            )
            .values(
                attempt=bindparam("b_attempt"),
                available_at=bindparam("b_at"),
                lease_token=None,
            ),
            [{"b_id": i, "b_token": t, "b_attempt": a, "b_at": at} for i, t, a, at in items],
        )


async def drop_scheduled_for_endpoints(conn: AsyncConnection, endpoint_ids: Sequence[str]) -> None:
    """Pending scheduled deliveries of disabled endpoints are dropped (manual ones still go)."""
    if endpoint_ids:
        await conn.execute(
            delete(deliveries).where(
                deliveries.c.endpoint_id.in_(endpoint_ids), deliveries.c.trigger == "scheduled"
            )
        )


async def drop_scheduled_for_store(conn: AsyncConnection, store_id: str) -> None:
    ids = select(endpoints.c.id).where(endpoints.c.store_id == store_id).scalar_subquery()
    await conn.execute(
        delete(deliveries).where(
            deliveries.c.endpoint_id.in_(ids), deliveries.c.trigger == "scheduled"
        )
    )


async def stats(conn: AsyncConnection, now: int) -> tuple[int, int | None]:
    """(rows due now, available_at of the oldest due row)."""
    q = select(func.count(), func.min(deliveries.c.available_at)).where(
        deliveries.c.available_at <= now
    )
    count, oldest = (await conn.execute(q)).one()
    return int(count), oldest


async def next_due(conn: AsyncConnection) -> int | None:
    q = select(func.min(deliveries.c.available_at))
    value = (await conn.execute(q)).scalar_one_or_none()
    return int(value) if value is not None else None


async def announce(conn: AsyncConnection) -> None:
    """Tell listening workers (PostgreSQL NOTIFY, sent when the transaction commits)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify('prometora_webhooks_due', '')"))


async def release(conn: AsyncConnection, items: Sequence[tuple[int, str]], at: int) -> None:
    """Give claimed rows back unattempted, claimable again from ``at``."""
    if items:
        await conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id == bindparam("b_id"),
                deliveries.c.lease_token == bindparam("b_token"),
            )
            .values(available_at=at, lease_token=None),
            [{"b_id": i, "b_token": t} for i, t in items],
        )

"""The delivery queue: the hot queries (claim, finish, retry, drop) kept together.

A row is claimable when ``available_at <= now``. Claiming sets ``available_at`` to the end of
the lease and a fresh ``lease_token``; only the holder of that token may finish or reschedule
the row. A worker that dies simply lets its lease run out, and another worker claims the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import deliveries, endpoints


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    endpoint_id: str
    event_id: str
    attempt: int
    trigger: str
    lease_token: str


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


async def claim(
    conn: AsyncConnection,
    now: int,
    lease_until: int,
    token: str,
    limit: int,
    exclude_endpoints: Sequence[str] = (),
) -> list[Claimed]:
    due = (
        select(deliveries.c.id)
        .where(deliveries.c.available_at <= now)
        .order_by(deliveries.c.available_at)
        .limit(limit)
    )
    if exclude_endpoints:
        due = due.where(deliveries.c.endpoint_id.not_in(exclude_endpoints))
    if conn.dialect.name == "postgresql":
        # Lock the chosen rows in a CTE; rows other workers hold are skipped, never waited on.
        due = due.with_for_update(skip_locked=True)
    picked = due.cte("picked")
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == picked.c.id)
        .values(available_at=lease_until, lease_token=token)
        .returning(
            deliveries.c.id,
            deliveries.c.endpoint_id,
            deliveries.c.event_id,
            deliveries.c.attempt,
            deliveries.c.trigger,
        )
    )
    return [
        Claimed(r.id, r.endpoint_id, r.event_id, r.attempt, r.trigger, token) for r in result.all()
    ]


async def finish(conn: AsyncConnection, items: Sequence[tuple[int, str]]) -> None:
    """Remove rows (id, lease token) whose delivery is over: delivered, exhausted or dropped."""
    if items:
        await conn.execute(
            delete(deliveries).where(
                deliveries.c.id == bindparam("b_id"),
                deliveries.c.lease_token == bindparam("b_token"),
            ),
            [{"b_id": i, "b_token": t} for i, t in items],
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

"""Queries on endpoints, their subscriptions and their signing secrets."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ..domain.models import Endpoint
from . import driver
from .tables import attempts, deliveries, endpoint_secrets, endpoints, stores, subscriptions

_COLS = (
    endpoints.c.id,
    endpoints.c.store_id,
    endpoints.c.url,
    endpoints.c.description,
    endpoints.c.events,
    endpoints.c.format,
    endpoints.c.header_names,
    endpoints.c.enabled,
    endpoints.c.disabled_reason,
    endpoints.c.consecutive_failures,
    endpoints.c.last_triggered_at,
    endpoints.c.created_at,
    endpoints.c.updated_at,
)


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        store_id=row.store_id,
        url=row.url,
        description=row.description,
        events=tuple(json.loads(row.events)),
        format=row.format,
        header_names=tuple(json.loads(row.header_names)),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason,
        consecutive_failures=row.consecutive_failures,
        last_triggered_at=row.last_triggered_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def insert(
    conn: AsyncConnection, ep: Endpoint, headers_enc: str | None, secret_enc: str
) -> None:
    await conn.execute(
        endpoints.insert().values(
            id=ep.id,
            store_id=ep.store_id,
            url=ep.url,
            description=ep.description,
            events=json.dumps(list(ep.events)),
            format=ep.format,
            headers_enc=headers_enc,
            header_names=json.dumps(list(ep.header_names)),
            enabled=ep.enabled,
            disabled_reason=ep.disabled_reason,
            consecutive_failures=0,
            last_triggered_at=None,
            created_at=ep.created_at,
            updated_at=ep.updated_at,
        )
    )
    await set_subscriptions(conn, ep.id, ep.store_id, ep.events)
    await conn.execute(
        endpoint_secrets.insert().values(
            endpoint_id=ep.id, secret_enc=secret_enc, created_at=ep.created_at, expires_at=None
        )
    )


async def set_subscriptions(
    conn: AsyncConnection, endpoint_id: str, store_id: str, types: Iterable[str]
) -> None:
    await conn.execute(delete(subscriptions).where(subscriptions.c.endpoint_id == endpoint_id))
    await conn.execute(
        subscriptions.insert(),
        [{"endpoint_id": endpoint_id, "event_type": t, "store_id": store_id} for t in types],
    )


async def get(conn: AsyncConnection, endpoint_id: str, store_id: str) -> Endpoint | None:
    row = (
        await conn.execute(
            select(*_COLS).where(endpoints.c.id == endpoint_id, endpoints.c.store_id == store_id)
        )
    ).first()
    return _endpoint(row) if row else None


async def list_page(
    conn: AsyncConnection, store_id: str, limit: int, after: tuple[int, str] | None
) -> list[Endpoint]:
    """Newest first; ``after`` is the (created_at, id) of the last item of the previous page."""
    q = select(*_COLS).where(endpoints.c.store_id == store_id)
    if after is not None:
        q = q.where(
            or_(
                endpoints.c.created_at < after[0],
                and_(endpoints.c.created_at == after[0], endpoints.c.id < after[1]),
            )
        )
    q = q.order_by(endpoints.c.created_at.desc(), endpoints.c.id.desc()).limit(limit)
    return [_endpoint(r) for r in (await conn.execute(q)).all()]


async def lock_store(conn: AsyncConnection, store_id: str) -> bool:
    """Serialise changes to a store's set of endpoints until this transaction ends.

    PostgreSQL: the store's row, ``FOR UPDATE``; a concurrent create waits here and then counts
    what the first one committed. SQLite: the transaction already holds the database's one
    write lock (``BEGIN IMMEDIATE``, see ``Database.write``). False if there is no such store.
    """
    q = select(stores.c.id).where(stores.c.id == store_id)
    if conn.dialect.name != "sqlite":
        q = q.with_for_update()
    return (await conn.execute(q)).first() is not None


async def count_for_store(conn: AsyncConnection, store_id: str) -> int:
    q = select(func.count()).select_from(endpoints).where(endpoints.c.store_id == store_id)
    return int((await conn.execute(q)).scalar_one())


async def update_fields(conn: AsyncConnection, endpoint_id: str, **values: Any) -> None:
    if "events" in values:
        values["events"] = json.dumps(list(values["events"]))
    if "header_names" in values:
        values["header_names"] = json.dumps(list(values["header_names"]))
    await conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(**values))


async def delete_all(conn: AsyncConnection, endpoint_id: str) -> None:
    """The endpoint with its subscriptions, secrets, pending deliveries and delivery log."""
    for table in (subscriptions, endpoint_secrets, deliveries, attempts):
        await conn.execute(delete(table).where(table.c.endpoint_id == endpoint_id))
    await conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id))


async def live_secrets(conn: AsyncConnection, endpoint_id: str, now: int) -> list[str]:
    """Encrypted secrets that still sign, newest first."""
    q = (
        select(endpoint_secrets.c.secret_enc)
        .where(
            endpoint_secrets.c.endpoint_id == endpoint_id,
            or_(endpoint_secrets.c.expires_at.is_(None), endpoint_secrets.c.expires_at > now),
        )
        .order_by(endpoint_secrets.c.id.desc())
    )
    return list((await conn.execute(q)).scalars())


async def rotate_secret(
    conn: AsyncConnection, endpoint_id: str, new_enc: str, now: int, grace_ms: int
) -> None:
    """Expire the current secret after ``grace_ms`` and make ``new_enc`` current."""
    await conn.execute(
        update(endpoint_secrets)
        .where(
            endpoint_secrets.c.endpoint_id == endpoint_id, endpoint_secrets.c.expires_at.is_(None)
        )
        .values(expires_at=now + grace_ms)
    )
    await conn.execute(
        delete(endpoint_secrets).where(
            endpoint_secrets.c.endpoint_id == endpoint_id, endpoint_secrets.c.expires_at <= now
        )
    )
    await conn.execute(
        endpoint_secrets.insert().values(
            endpoint_id=endpoint_id, secret_enc=new_enc, created_at=now, expires_at=None
        )
    )


async def all_secrets(conn: AsyncConnection) -> list[tuple[int, str, str]]:
    q = select(endpoint_secrets.c.id, endpoint_secrets.c.endpoint_id, endpoint_secrets.c.secret_enc)
    return [(r.id, r.endpoint_id, r.secret_enc) for r in (await conn.execute(q)).all()]


async def all_headers(conn: AsyncConnection) -> list[tuple[str, str]]:
    q = select(endpoints.c.id, endpoints.c.headers_enc).where(endpoints.c.headers_enc.is_not(None))
    return [(r.id, r.headers_enc) for r in (await conn.execute(q)).all()]


async def set_secret_enc(conn: AsyncConnection, secret_id: int, enc: str) -> None:
    await conn.execute(
        update(endpoint_secrets).where(endpoint_secrets.c.id == secret_id).values(secret_enc=enc)
    )


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """What the worker needs to send to one endpoint."""

    id: str
    store_id: str
    url: str
    format: str
    enabled: bool
    plan: str
    headers_enc: str | None
    secrets_enc: tuple[str, ...]  # newest first


async def targets(
    conn: AsyncConnection, endpoint_ids: Sequence[str], now: int
) -> dict[str, DeliveryTarget]:
    """What sending needs, for each endpoint of a claimed batch (driver SQL: once per claim)."""
    if not endpoint_ids:
        return {}
    if driver.is_postgres(conn):
        return await _targets_pg(conn, endpoint_ids, now)
    marks = driver.placeholders(len(endpoint_ids))
    rows = await driver.fetchall(
        conn,
        "SELECT endpoints.id, endpoints.store_id, endpoints.url, endpoints.format,"
        ' endpoints.enabled, endpoints.headers_enc, stores."plan"'
        " FROM endpoints JOIN stores ON stores.id = endpoints.store_id"
        f" WHERE endpoints.id IN ({marks})",
        tuple(endpoint_ids),
    )
    secret_rows = await driver.fetchall(
        conn,
        "SELECT endpoint_id, secret_enc FROM endpoint_secrets"
        f" WHERE endpoint_id IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)"
        " ORDER BY id DESC",
        (*endpoint_ids, now),
    )
    by_ep: dict[str, list[str]] = {}
    for endpoint_id, secret_enc in secret_rows:
        by_ep.setdefault(endpoint_id, []).append(secret_enc)
    return {
        r[0]: DeliveryTarget(
            r[0], r[1], r[2], r[3], bool(r[4]), r[6], r[5], tuple(by_ep.get(r[0], ()))
        )
        for r in rows
    }


# PostgreSQL: the endpoints with their current secrets (newest first) in one query.
_TARGETS_PG = (
    "SELECT endpoints.id, endpoints.store_id, endpoints.url, endpoints.format,"
    ' endpoints.enabled, endpoints.headers_enc, stores."plan",'
    " ARRAY(SELECT secret_enc FROM endpoint_secrets s WHERE s.endpoint_id = endpoints.id"
    " AND (s.expires_at IS NULL OR s.expires_at > ?) ORDER BY s.id DESC)"
    " FROM endpoints JOIN stores ON stores.id = endpoints.store_id"
    " WHERE endpoints.id = ANY(?::text[])"
)


async def _targets_pg(
    conn: AsyncConnection, endpoint_ids: Sequence[str], now: int
) -> dict[str, DeliveryTarget]:
    rows = await driver.fetchall(conn, _TARGETS_PG, (now, list(endpoint_ids)))
    return {
        r[0]: DeliveryTarget(r[0], r[1], r[2], r[3], bool(r[4]), r[6], r[5], tuple(r[7]))
        for r in rows
    }


# A success (the counter reset) also ends the parking of new deliveries (``park_new``).
_COUNTERS_SQL = (
    "UPDATE endpoints SET consecutive_failures = consecutive_failures * ? + ?,"
    " last_triggered_at = COALESCE({latest}(last_triggered_at, ?), ?),"
    " parked_until = CASE WHEN ? = 0 THEN NULL ELSE parked_until END WHERE id = ?"
)


async def apply_counters(
    conn: AsyncConnection, changes: Sequence[tuple[str, bool, int, int]]
) -> None:
    """(endpoint_id, reset, failures, last_started_at): set or add to the failure counter; a
    reset (a success) also ends the endpoint's parking."""
    # SQLite's max() of several arguments is PostgreSQL's greatest() (NULL aside: COALESCE).
    sql = _COUNTERS_SQL.format(latest="greatest" if driver.is_postgres(conn) else "max")
    # A fixed order (by id) keeps concurrent workers from deadlocking on endpoint rows.
    await driver.executemany(
        conn,
        sql,
        [
            (0 if reset else 1, failures, started, started, 0 if reset else 1, endpoint_id)
            for endpoint_id, reset, failures, started in sorted(changes)
        ],
    )


async def park_new(conn: AsyncConnection, endpoint_id: str, now: int, until: int) -> int:
    """Deliveries queued for this endpoint from now on wait until ``until`` (ms), or until the
    end of its parking if one is still on: that end, which the rows parked with it share (so
    that a success can make exactly those due again)."""
    rows = await driver.fetchall(
        conn,
        "UPDATE endpoints SET parked_until = CASE WHEN parked_until > ? THEN parked_until"
        " ELSE ? END WHERE id = ? RETURNING parked_until",
        (now, until, endpoint_id),
    )
    return int(rows[0][0]) if rows else until


async def parked(conn: AsyncConnection, endpoint_ids: Sequence[str], now: int) -> dict[str, int]:
    """Of these endpoints, those whose new deliveries are parked, and until when."""
    ids = driver.placeholders(len(endpoint_ids))
    rows = await driver.fetchall(
        conn,
        f"SELECT id, parked_until FROM endpoints WHERE id IN ({ids}) AND parked_until > ?",
        (*endpoint_ids, now),
    )
    return {r[0]: r[1] for r in rows}


async def disable(
    conn: AsyncConnection,
    endpoint_ids: Sequence[str],
    reason: str,
    now: int,
    *,
    min_failures: int | None = None,
) -> list[str]:
    """Disable those still enabled (and at ``min_failures`` or more); return which were."""
    if not endpoint_ids:
        return []
    cond: list[ColumnElement[bool]] = [
        endpoints.c.id.in_(endpoint_ids),
        endpoints.c.enabled.is_(True),
    ]
    if min_failures is not None:
        cond.append(endpoints.c.consecutive_failures >= min_failures)
    result = await conn.execute(
        update(endpoints)
        .where(*cond)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
        .returning(endpoints.c.id)
    )
    return list(result.scalars())

"""The delivery log: one row per attempt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.models import Attempt
from ..domain.outcomes import AttemptResult
from . import driver, queue
from .tables import attempts

_COLS = (
    attempts.c.id,
    attempts.c.endpoint_id,
    attempts.c.event_id,
    attempts.c.event_type,
    attempts.c.attempt,
    attempts.c.trigger,
    attempts.c.status,
    attempts.c.http_status,
    attempts.c.response_time_ms,
    attempts.c.error,
    attempts.c.response_body,
    attempts.c.attempted_at,
)


def _attempt(row: Any) -> Attempt:
    return Attempt(
        row.id,
        row.endpoint_id,
        row.event_id,
        row.event_type,
        row.attempt,
        row.trigger,
        row.status,
        row.http_status,
        row.response_time_ms,
        row.error,
        bytes(row.response_body),
        row.attempted_at,
    )


_INSERT = (
    "INSERT INTO attempts (id, endpoint_id, event_id, event_type, store_id, attempt,"
    ' "trigger", status, http_status, response_time_ms, error, response_body, attempted_at)'
)
INSERT_SQL = _INSERT + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_ARRAYS = (
    _INSERT + " SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[],"
    " ?::int[], ?::text[], ?::text[], ?::int[], ?::int[], ?::text[], ?::bytea[], ?::bigint[])"
)


def _row(r: AttemptResult) -> tuple[Any, ...]:
    """An attempt row in ``INSERT_SQL``'s column order."""
    return (
        r.attempt_id,
        r.endpoint_id,
        r.event_id,
        r.event_type,
        r.store_id,
        r.attempt,
        r.trigger,
        "succeeded" if r.succeeded else "failed",
        r.http_status,
        r.response_time_ms,
        r.error,
        r.response_body,
        r.started_at,
    )


async def insert_results(conn: AsyncConnection, results: Sequence[AttemptResult]) -> None:
    """One row per finished attempt (the recorder's hot path: driver SQL, tuples)."""
    await driver.execute_rows(
        conn, [_row(r) for r in results], per_row=INSERT_SQL, arrays=_INSERT_ARRAYS
    )


# PostgreSQL: the attempt rows and the end of the deliveries that are over, in one statement.
_LOG_AND_FINISH = "WITH logged AS (" + _INSERT_ARRAYS + ") " + queue.FINISH_ARRAYS


async def log_and_finish(
    conn: AsyncConnection, results: Sequence[AttemptResult], finished: Sequence[tuple[int, str]]
) -> None:
    """``insert_results`` and ``queue.finish`` (rows of (delivery id, lease token)): on
    PostgreSQL one round trip instead of two."""
    if not (results and finished and driver.is_postgres(conn)):
        await insert_results(conn, results)
        await queue.finish(conn, finished)
        return
    rows = [_row(r) for r in results]
    await driver.execute(conn, _LOG_AND_FINISH, (*driver.columns(rows), *driver.columns(finished)))


async def get(conn: AsyncConnection, attempt_id: str) -> Attempt | None:
    row = (await conn.execute(select(*_COLS).where(attempts.c.id == attempt_id))).first()
    return _attempt(row) if row else None


async def list_page(
    conn: AsyncConnection, endpoint_id: str, limit: int, after: tuple[int, str] | None
) -> list[Attempt]:
    """Newest first; ``after`` is the (attempted_at, id) of the previous page's last item."""
    q = select(*_COLS).where(attempts.c.endpoint_id == endpoint_id)
    if after is not None:
        q = q.where(
            or_(
                attempts.c.attempted_at < after[0],
                and_(attempts.c.attempted_at == after[0], attempts.c.id < after[1]),
            )
        )
    q = q.order_by(attempts.c.attempted_at.desc(), attempts.c.id.desc()).limit(limit)
    return [_attempt(r) for r in (await conn.execute(q)).all()]


async def succeeded(conn: AsyncConnection, endpoint_id: str, event_id: str) -> bool:
    q = select(
        exists().where(
            attempts.c.endpoint_id == endpoint_id,
            attempts.c.event_id == event_id,
            attempts.c.status == "succeeded",
        )
    )
    return bool((await conn.execute(q)).scalar())


async def purge(conn: AsyncConnection, cutoff: int) -> int:
    result = await conn.execute(delete(attempts).where(attempts.c.attempted_at < cutoff))
    return int(result.rowcount or 0)

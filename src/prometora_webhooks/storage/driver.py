"""SQL text handed to the driver as is, for the few statements that run once per delivery.

SQLAlchemy Core builds, caches and binds every statement in Python: per row of an executemany
it makes a parameter dict and runs each column's bind processor. For the statements on the
delivery path (queue rows at publish, claims, attempt rows, queue deletes, endpoint counters)
that was about a sixth of a delivery's CPU. These are written once in SQL with ``?``
placeholders (rewritten to ``$n`` for asyncpg) and run with ``exec_driver_sql`` on the same
connection, so they stay inside the caller's transaction, with tuples as rows.
Only plain columns and literals go in them; every value is a bound parameter.

Many rows at once (``execute_rows``): sqlite3's executemany runs the one prepared statement
per row in C. asyncpg's executemany makes PostgreSQL bind and execute the statement once per
row; there the rows go instead as one array per column in a single statement (``unnest``),
which PostgreSQL plans and runs once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


@functools.lru_cache(maxsize=1024)
def render(sql: str, *, dollar: bool) -> str:
    """``?`` placeholders as the driver wants them: as they are (sqlite3), or ``$1, $2, …``
    (asyncpg). The statements here hold no ``?`` other than placeholders."""
    if not dollar:
        return sql
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))


def is_postgres(conn: AsyncConnection) -> bool:
    """The statements that differ by database (locking, ``greatest``/``max``) ask this."""
    return conn.dialect.name == "postgresql"


def placeholders(n: int) -> str:
    """``?, ?, …`` for an IN list of ``n`` values (n ≥ 1)."""
    return ", ".join("?" * n)


def _sql(conn: AsyncConnection, sql: str) -> str:
    return render(sql, dollar=is_postgres(conn))


async def executemany(conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await conn.exec_driver_sql(_sql(conn, sql), list(rows))


async def execute_rows(
    conn: AsyncConnection, rows: Sequence[tuple[Any, ...]], *, per_row: str, arrays: str
) -> None:
    """Run a statement for many rows: ``per_row`` (``?`` per column, executemany) on SQLite;
    on PostgreSQL ``arrays``, one statement with a ``?`` per column that takes an array of
    that column's values (``unnest(?::text[], ?::bigint[]) AS t (a, b)``)."""
    if not rows:
        return
    if is_postgres(conn):
        columns = tuple(list(col) for col in zip(*rows, strict=True))
        await conn.exec_driver_sql(render(arrays, dollar=True), columns)
    else:
        await conn.exec_driver_sql(per_row, list(rows))


async def execute(conn: AsyncConnection, sql: str, params: tuple[Any, ...] = ()) -> int:
    """One statement; the number of rows it changed."""
    return int((await conn.exec_driver_sql(_sql(conn, sql), params)).rowcount or 0)


async def fetchall(conn: AsyncConnection, sql: str, params: tuple[Any, ...] = ()) -> Sequence[Any]:
    """The result rows (SQLAlchemy ``Row``s: index them by position)."""
    return (await conn.exec_driver_sql(_sql(conn, sql), params)).all()

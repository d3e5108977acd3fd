"""SQL text handed to the driver as is, for the few statements that run once per delivery.

SQLAlchemy Core builds, caches and binds every statement in Python: per row of an executemany
it makes a parameter dict and runs each column's bind processor. For the statements on the
delivery path (queue rows at publish, claims, attempt rows, queue deletes, endpoint counters)
that was about a sixth of a delivery's CPU. These are written once in SQL with ``?``
placeholders (rewritten to ``$n`` for asyncpg) and run on the caller's connection, inside its
transaction, with tuples as rows: on SQLite with ``exec_driver_sql``.
Only plain columns and literals go in them; every value is a bound parameter.

On PostgreSQL these statements go to asyncpg itself, on the connection SQLAlchemy has checked
out and in the transaction it manages (started here if it is not yet, as SQLAlchemy's adapter
would): SQLAlchemy's execution path costs ~65 µs of Python per statement (execution context,
cursor adapter, result wrapping) against ~15 µs for asyncpg alone, which matters when a
publish, a claim or a record is one event and a few statements. Errors become the same
SQLAlchemy exceptions (``IntegrityError``, ``DBAPIError`` with the connection invalidated when
it is lost) as on SQLAlchemy's own path.

Many rows at once (``execute_rows``): sqlite3's executemany runs the one prepared statement
per row in C. asyncpg's executemany makes PostgreSQL bind and execute the statement once per
row; there the rows go instead as one array per column in a single statement (``unnest``),
which PostgreSQL plans and runs once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError
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


def columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the arrays of an ``unnest`` statement."""
    return [list(col) for col in zip(*rows, strict=True)]


async def _asyncpg(conn: AsyncConnection, how: str, sql: str, args: Sequence[Any]) -> Any:
    """Run ``sql`` (``$n`` placeholders) with asyncpg's ``how`` (``fetch``, ``execute`` or
    ``executemany``) on the connection's asyncpg connection, in its SQLAlchemy transaction.
    SQLAlchemy's asyncpg adapter is used as its own cursor uses it: its lock, its lazily
    started transaction (a no-op in autocommit), its translation of asyncpg's errors."""
    sync: Any = conn.sync_connection
    fairy = sync._dbapi_connection  # the checked-out connection (None once invalidated)
    if fairy is None:
        fairy = await conn.get_raw_connection()
    adapted: Any = fairy.dbapi_connection
    dialect: Any = sync.dialect
    async with adapted._execute_mutex:
        try:
            if adapted._transaction is None:
                await adapted._start_transaction()
            return await getattr(adapted._connection, how)(sql, *args)
        except Exception as error:
            try:
                adapted._handle_exception(error)  # raises the DBAPI-level error
            except dialect.loaded_dbapi.Error as dbapi_error:
                lost = bool(dialect.is_disconnect(dbapi_error, adapted, None))
                if lost:
                    await conn.invalidate(dbapi_error)
                raise DBAPIError.instance(
                    sql,
                    None,
                    dbapi_error,
                    dialect.loaded_dbapi.Error,
                    connection_invalidated=lost,
                    dialect=dialect,
                ) from error
            raise


def _count(status: str | None) -> int:
    """Rows changed, from a command status (``UPDATE 3``, ``INSERT 0 5``, ``DELETE 1``)."""
    last = (status or "").rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


async def executemany(conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if not rows:
        return
    if is_postgres(conn):
        await _asyncpg(conn, "executemany", render(sql, dollar=True), (list(rows),))
    else:
        await conn.exec_driver_sql(sql, list(rows))


async def execute_rows(
    conn: AsyncConnection, rows: Sequence[tuple[Any, ...]], *, per_row: str, arrays: str
) -> None:
    """Run a statement for many rows: ``per_row`` (``?`` per column, executemany) on SQLite;
    on PostgreSQL ``arrays``, one statement with a ``?`` per column that takes an array of
    that column's values (``unnest(?::text[], ?::bigint[]) AS t (a, b)``)."""
    if not rows:
        return
    if is_postgres(conn):
        await _asyncpg(conn, "execute", render(arrays, dollar=True), columns(rows))
    else:
        await conn.exec_driver_sql(per_row, list(rows))


async def execute(conn: AsyncConnection, sql: str, params: tuple[Any, ...] = ()) -> int:
    """One statement; the number of rows it changed."""
    if is_postgres(conn):
        return _count(await _asyncpg(conn, "execute", render(sql, dollar=True), params))
    return int((await conn.exec_driver_sql(sql, params)).rowcount or 0)


async def fetchall(conn: AsyncConnection, sql: str, params: tuple[Any, ...] = ()) -> Sequence[Any]:
    """The result rows (index them by position: SQLAlchemy ``Row``s on SQLite, asyncpg
    ``Record``s on PostgreSQL)."""
    if is_postgres(conn):
        records: list[Any] = await _asyncpg(conn, "fetch", render(sql, dollar=True), params)
        return records
    return (await conn.exec_driver_sql(sql, params)).all()

"""The driver SQL of the hot paths (``storage/driver.py``) on real databases. On PostgreSQL it
bypasses SQLAlchemy's execution path and runs on asyncpg directly: it must still run inside
the caller's transaction, count the rows it changed, and raise SQLAlchemy's exceptions
(a lost connection invalidated, so that the pool replaces it)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from prometora_webhooks.storage import driver
from prometora_webhooks.storage.database import Database
from tests.support.databases import run_with_databases

_INSERT = (
    'INSERT INTO deliveries (id, endpoint_id, event_id, attempt, "trigger", available_at)'
    " VALUES (?, ?, ?, 1, 'scheduled', ?)"
)


class _Undo(Exception):
    pass


async def _write(db: Database, *statements: tuple[str, tuple[object, ...]], undo: bool) -> None:
    """Run the statements in one write transaction; ``undo``: then fail, so it rolls back."""
    async with db.write() as conn:
        for sql, params in statements:
            await driver.execute(conn, sql, params)
        if undo:
            raise _Undo


async def _ids(db: Database) -> list[int]:
    async with db.read() as conn:
        return [r[0] for r in await driver.fetchall(conn, "SELECT id FROM deliveries ORDER BY id")]


def test_driver_statements_run_in_the_callers_transaction(db_url: str) -> None:
    async def body(db: Database) -> tuple[list[int], int, list[int], int]:
        with pytest.raises(_Undo):
            await _write(db, (_INSERT, (1, "we_a", "e1", 5)), undo=True)
        async with db.write() as conn:
            await driver.execute_rows(
                conn,
                [(2, "we_a", "e2", 5), (3, "we_b", "e3", 5)],
                per_row=_INSERT,
                arrays='INSERT INTO deliveries (id, endpoint_id, event_id, attempt, "trigger",'
                " available_at) SELECT i, e, v, 1, 'scheduled', a"
                " FROM unnest(?::bigint[], ?::text[], ?::text[], ?::bigint[]) AS t (i, e, v, a)",
            )
            await driver.executemany(conn, _INSERT, [(4, "we_b", "e4", 9)])
        committed = await _ids(db)
        async with db.write() as conn:
            changed = await driver.execute(
                conn, "UPDATE deliveries SET available_at = ? WHERE endpoint_id = ?", (7, "we_b")
            )
        with pytest.raises(_Undo):
            await _write(db, ("DELETE FROM deliveries WHERE id = ?", (2,)), undo=True)
        async with db.read() as conn:
            rows = await driver.fetchall(
                conn, "SELECT count(*) FROM deliveries WHERE available_at = ?", (7,)
            )
        return committed, changed, await _ids(db), int(rows[0][0])

    committed, changed, after, at_seven = run_with_databases(db_url, body)
    assert committed == [2, 3, 4]  # the first insert was rolled back with its transaction
    assert changed == 2
    assert after == [2, 3, 4]  # the delete was rolled back
    assert at_seven == 2


def test_driver_errors_are_sqlalchemy_errors(db_url: str) -> None:
    async def body(db: Database) -> list[int]:
        async with db.write() as conn:
            await driver.execute(conn, _INSERT, (1, "we_a", "e1", 5))
        with pytest.raises(IntegrityError):  # the second row has the first one's id
            await _write(
                db, (_INSERT, (2, "we_a", "e2", 5)), (_INSERT, (1, "we_a", "e1", 5)), undo=False
            )
        return await _ids(db)

    assert run_with_databases(db_url, body) == [1]  # the whole transaction was undone


def test_a_lost_postgresql_connection_is_invalidated_and_replaced(
    db_url: str, db_kind: str
) -> None:
    if db_kind != "postgresql":
        pytest.skip("SQLite has no server connection to lose")

    async def body(db: Database) -> tuple[bool, list[int]]:
        async with db.autocommit() as other, db.autocommit() as conn:
            pid = (await driver.fetchall(conn, "SELECT pg_backend_pid()"))[0][0]
            await driver.execute(other, "SELECT pg_terminate_backend(?)", (pid,))
            with pytest.raises(DBAPIError) as caught:
                await driver.fetchall(conn, "SELECT 1")
        async with db.write() as conn:  # the pool gives a working connection
            await driver.execute(conn, _INSERT, (1, "we_a", "e1", 5))
        return caught.value.connection_invalidated, await _ids(db)

    invalidated, ids = run_with_databases(db_url, body)
    assert invalidated
    assert ids == [1]

"""Waiting for the database never stalls the event loop (both databases).

On SQLite most statements run on the event loop's thread (storage/sqlite_inline.py); only what
can wait goes to a thread. These tests hold the write lock from a second handle (on SQLite, what
another process's writer does; on PostgreSQL, an exclusive table lock) and check that a writer
queued behind it lets other coroutines run, goes on once the lock is released, and that readers
do not queue behind it at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.exc import DBAPIError

from prometora_webhooks.storage import queue
from prometora_webhooks.storage.database import Database
from tests.support.databases import run_with_databases

TICKS_WHILE_WAITING = 20


@asynccontextmanager
async def _write_lock_held(other: Database) -> AsyncIterator[asyncio.Event]:
    """Hold the deliveries table's write lock from ``other`` until the yielded event is set."""
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with other.write() as conn:
            if not other.is_sqlite:  # SQLite's BEGIN IMMEDIATE already holds the write lock
                await conn.exec_driver_sql("LOCK TABLE deliveries IN EXCLUSIVE MODE")
            await queue.enqueue(conn, "ep_holder", "e_holder", "scheduled", 1)
            held.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await held.wait()
    try:
        yield release
    finally:
        release.set()
        await task


async def _ticks_until(done: asyncio.Future[object], ticks: int) -> int:
    """Tick (yield to the loop) until ``done`` or ``ticks`` ticks; return the count."""
    n = 0
    while not done.done() and n < ticks:
        await asyncio.sleep(0.005)
        n += 1
    return n


async def _event_ids(db: Database) -> list[str]:
    async with db.read() as conn:
        rows = await conn.exec_driver_sql("SELECT event_id FROM deliveries ORDER BY id")
        return [r[0] for r in rows]


def test_a_writer_waiting_for_the_lock_lets_the_loop_run(db_url: str) -> None:
    async def body(db: Database, other: Database) -> None:
        async def write() -> None:
            async with db.write() as conn:
                await queue.enqueue(conn, "ep_waiter", "e_waiter", "scheduled", 2)

        async with _write_lock_held(other) as release:
            waiter = asyncio.create_task(write())
            ticks = await _ticks_until(waiter, TICKS_WHILE_WAITING)
            # The loop kept running while the writer waited, and the writer is still waiting.
            assert ticks == TICKS_WHILE_WAITING
            assert not waiter.done()
            release.set()
            await asyncio.wait_for(waiter, 30)
        assert await _event_ids(db) == ["e_holder", "e_waiter"]

    run_with_databases(db_url, body, handles=2)


def test_a_reader_does_not_wait_for_a_writer(db_url: str) -> None:
    async def body(db: Database, other: Database) -> None:
        async with db.write() as conn:
            await queue.enqueue(conn, "ep_before", "e_before", "scheduled", 0)
        async with _write_lock_held(other):
            # The holder's uncommitted row is not seen; the committed one is.
            assert await asyncio.wait_for(_event_ids(db), 10) == ["e_before"]

    run_with_databases(db_url, body, handles=2)


def test_a_failed_write_rolls_back_and_the_connection_is_reusable(db_url: str) -> None:
    async def body(db: Database, _other: Database) -> None:
        async def bad_write() -> None:
            async with db.write() as conn:
                await queue.enqueue(conn, "ep", "e_lost", "scheduled", 0)
                await conn.exec_driver_sql("SELECT * FROM no_such_table")

        with pytest.raises(DBAPIError, match="no_such_table"):
            await bad_write()
        async with db.write() as conn:
            await queue.enqueue(conn, "ep", "e_kept", "scheduled", 0)
        assert await _event_ids(db) == ["e_kept"]

    run_with_databases(db_url, body, handles=2)

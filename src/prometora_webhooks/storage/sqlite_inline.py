"""The SQLite connection SQLAlchemy's aiosqlite dialect is given: sqlite3 on the event loop,
with only the calls that can block sent to a thread.

aiosqlite runs every call on a thread of its own, and SQLAlchemy makes four calls per statement
(cursor, execute, fetchall, close): four thread hand-offs, each two context switches and an
event-loop wake-up. Measured here: 270 µs of CPU per ``SELECT 1`` that takes sqlite3 0.9 µs, so
that at low rates (small batches) most of a delivery's cost was hand-offs.

Inside a transaction, SQLite statements do no waiting: ``BEGIN IMMEDIATE`` has already taken the
write lock (and a read transaction in WAL mode takes none), and pages are written to the WAL
only at commit. So they run inline. What can wait goes to a thread: ``COMMIT`` (the fsync, and
the WAL checkpoint that can follow it), and any statement outside a transaction (``BEGIN
IMMEDIATE`` waits for another process's writer up to the busy timeout; a statement in
autocommit mode is its own commit). This module has the interface of ``aiosqlite.Connection``
and ``aiosqlite.Cursor`` that SQLAlchemy's adapter uses, and nothing else.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_BLOCKING = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pw-sqlite")


class InlineCursor:
    def __init__(self, owner: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._owner = owner
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await self._owner.run(sql, self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        await self._owner.run(sql, self._cursor.executemany, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _Inline:
    """What SQLAlchemy's adapter puts on aiosqlite's queue (to set ``isolation_level``)."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, fn = item
        try:
            future.set_result(fn())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """An ``aiosqlite.Connection`` look-alike (only what SQLAlchemy calls)."""

    _tx = _Inline()

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._reading: int | None = None  # total_changes at a deferred (read) BEGIN

    @classmethod
    async def connect(cls, database: str, *, timeout: float) -> InlineConnection:
        def open_() -> sqlite3.Connection:
            # Autocommit mode: the service issues BEGIN itself. The connection is used from the
            # event loop's thread and, for blocking calls, from the pool's threads; never from
            # two threads at once (SQLAlchemy runs one call at a time per connection).
            return sqlite3.connect(
                database, timeout=timeout, isolation_level=None, check_same_thread=False
            )

        return cls(await asyncio.get_running_loop().run_in_executor(_BLOCKING, open_))

    @property
    def _connection(self) -> sqlite3.Connection | None:  # SQLAlchemy checks it is open
        return self._conn

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("Connection closed")
        return self._conn

    async def run(self, sql: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` for statement ``sql``: inline inside a transaction and for a deferred
        ``BEGIN`` (it takes no lock), else on a thread (it may wait for a lock, or commit)."""
        conn = self._live()
        if conn.in_transaction:
            return fn(*args)
        if sql.strip().upper() == "BEGIN":
            result = fn(*args)
            self._reading = conn.total_changes
            return result
        self._reading = None
        return await asyncio.get_running_loop().run_in_executor(_BLOCKING, fn, *args)

    @property
    def isolation_level(self) -> str | None:
        return self._live().isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._live().in_transaction

    def cursor(self) -> InlineCursor:
        return InlineCursor(self, self._live().cursor())

    async def commit(self) -> None:
        conn = self._live()
        if not conn.in_transaction:
            return
        if self._reading is not None and self._reading == conn.total_changes:
            conn.commit()  # a read transaction that wrote nothing: only its read lock ends
            return
        await asyncio.get_running_loop().run_in_executor(_BLOCKING, conn.commit)

    async def rollback(self) -> None:
        conn = self._live()
        if conn.in_transaction:
            conn.rollback()  # nothing to write or wait for

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live().create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(_BLOCKING, conn.close)

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

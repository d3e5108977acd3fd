"""The database handle: one async engine, transactions, SQLite pragmas."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from .sqlite_inline import InlineConnection

SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE_S = 0.1  # PostgreSQL: test a pooled connection unused for longer than this


class DatabaseFileGone(ConnectionError):
    """The SQLite file the service has open was removed or replaced while it ran.

    Its open connections would go on writing to the old, unlinked file, whose content is lost
    at the next restart: every transaction is refused instead until the file is back."""


def async_url(url: str) -> str:
    """Map the user's URL to the async driver we use (aiosqlite / asyncpg)."""
    u = make_url(url.replace("postgres://", "postgresql://", 1))
    if u.get_backend_name() == "sqlite":
        return u.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database: {u.get_backend_name()}")


def listen_dsn(url: str) -> str:
    """A plain libpq-style DSN for a dedicated asyncpg LISTEN connection."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, pre_ping: bool = True) -> None:
        """``pre_ping``: test each pooled PostgreSQL connection before use (a round trip per
        transaction), so that the first request after a database restart does not fail. The
        ``worker`` turns it off: it retries a failed claim or write anyway."""
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        self._path: str | None = None  # SQLite: the database file
        if not self.is_sqlite:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size)
        else:
            path = make_url(self.url).database or ""
            self._path = path if path and path != ":memory:" else None
            kwargs.update(
                async_creator=lambda: InlineConnection.connect(
                    path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
                )
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        # SQLite has one writer at a time. Queue this process's writers here, in order, rather
        # than in SQLite's busy handler, which sleeps in growing steps (up to 100 ms) between
        # retries. Other processes still wait through busy_timeout.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._file_id: tuple[int, int] | None = None  # SQLite: (device, inode) of the open file
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine, self._opened)
        elif pre_ping:
            _install_pg_ping(self.engine)

    def _opened(self) -> None:
        """A connection was opened: remember which file the first one opened."""
        if self._file_id is None and self._path is not None:
            st = os.stat(self._path)
            self._file_id = (st.st_dev, st.st_ino)

    def _check_file(self) -> None:
        """Raise DatabaseFileGone if the SQLite file at the configured path is not the one the
        connections have open (a ``stat``: about a microsecond per transaction)."""
        if self._file_id is None or self._path is None:
            return
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            raise DatabaseFileGone(
                f"the database file {self._path} was removed while the service ran; put it "
                "back or restart the service"
            ) from None
        if (st.st_dev, st.st_ino) != self._file_id:
            raise DatabaseFileGone(
                f"the database file {self._path} was replaced while the service ran; restart "
                "the service to use the new file"
            )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction (BEGIN IMMEDIATE on SQLite: no lock-upgrade deadlocks)."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        self._check_file()
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a plain deferred BEGIN on SQLite, so readers never queue)."""
        self._check_file()
        async with self.engine.connect() as conn:
            await conn.execution_options(pw_readonly=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """PostgreSQL: a connection without a transaction around its statements, each one its
        own (no BEGIN and COMMIT round trips): for a write that is a single statement."""
        assert not self.is_sqlite
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def ping(self) -> None:
        """Raise if the database cannot be used now (unreachable, or its file is gone)."""
        async with self.read() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


def _install_pg_ping(engine: AsyncEngine) -> None:
    """Test each PostgreSQL connection as it leaves the pool, in one round trip: ``SELECT 1``
    outside any transaction, as a simple query (nothing to prepare). SQLAlchemy's
    ``pool_pre_ping`` takes three (BEGIN, ``;``, ROLLBACK, for PgBouncer's transaction mode):
    15 % of the ``api``'s CPU when publishes come one at a time. A dead connection is replaced
    (the pool tries again with a new one), so a request after a database restart does not
    fail. A connection given back less than PING_AFTER_IDLE_S ago worked then, and is not
    tested again: under load, connections go out and come back every few milliseconds, and a
    database restart takes longer than that."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["pw_returned"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("pw_returned")
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            await_only(dbapi_conn.driver_connection.execute("SELECT 1"))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DisconnectionError(str(exc)[:200]) from exc


def _install_sqlite_hooks(engine: AsyncEngine, opened: Callable[[], None]) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()
        opened()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("pw_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

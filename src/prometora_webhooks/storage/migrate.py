"""Bring the schema up to date with Alembic (safe to run from several processes at once)."""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str) -> None:
    """Migrate to head. Concurrent runs queue: PostgreSQL takes an advisory lock (env.py);
    SQLite takes an flock on the database file (independent of SQLite's own locks)."""
    path = _sqlite_file(database_url)
    if path is None:
        command.upgrade(alembic_config(database_url), "head")
        return
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            command.upgrade(alembic_config(database_url), "head")
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sqlite_file(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


async def upgrade_async(database_url: str) -> None:
    """Alembic's env runs its own event loop, so run it in a thread from async code."""
    await asyncio.to_thread(upgrade, database_url)

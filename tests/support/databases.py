"""A coroutine run against a migrated database, with ``Database`` handles of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometora_webhooks.storage.database import Database
from prometora_webhooks.storage.migrate import upgrade_async

T = TypeVar("T")


def run_with_databases(db_url: str, body: Callable[..., Awaitable[T]], handles: int = 1) -> T:
    """Migrate ``db_url``, open ``handles`` handles on it, return ``body(*handles)``; the
    handles are disposed of afterwards (a second handle is what another process would be)."""

    async def main() -> T:
        await upgrade_async(db_url)
        dbs = [Database(db_url) for _ in range(handles)]
        try:
            return await body(*dbs)
        finally:
            for db in dbs:
                await db.dispose()

    return asyncio.run(main())

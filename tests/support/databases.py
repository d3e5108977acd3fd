"""A coroutine run against a migrated database, with ``Database`` handles of its own; the
endpoint service the storage-level tests create endpoints with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometora_webhooks.crypto import SecretBox
from prometora_webhooks.domain.catalog import Catalog
from prometora_webhooks.services.endpoints import EndpointService
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


async def _no_dns(host: str, allow_private: bool) -> None:
    raise AssertionError(f"the test's addresses are IPs, not {host}")


def ip_endpoint_service(db: Database, box: SecretBox) -> EndpointService:
    """Endpoints at HTTPS URLs with IP addresses (private ones allowed); no name lookups."""
    return EndpointService(db, box, Catalog.load(), _no_dns, allow_http=False, allow_private=True)

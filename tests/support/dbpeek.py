"""Read a service's database from a test (SQLite or PostgreSQL), for what the API does not show:
the delivery queue, lease holders, the migration version."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from prometora_webhooks.storage.database import async_url


def query(db_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one read-only statement; return its rows."""

    async def run() -> list[tuple[Any, ...]]:
        engine = create_async_engine(async_url(db_url))
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(sql), params)
                return [tuple(r) for r in result.all()]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def scalar(db_url: str, sql: str, **params: Any) -> Any:
    (row,) = query(db_url, sql, **params)
    return row[0]


def execute(db_url: str, sql: str, **params: Any) -> int:
    """Run one writing statement in its own transaction (to age rows, say); return rowcount."""

    async def run() -> int:
        engine = create_async_engine(async_url(db_url))
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(sql), params)
                return int(result.rowcount or 0)
        finally:
            await engine.dispose()

    return asyncio.run(run())

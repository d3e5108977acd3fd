"""Small key/value facts about the installation (e.g. the admin token's hash)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import meta


async def get(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(select(meta.c.value).where(meta.c.key == key))).scalar_one_or_none()


async def put_if_absent(conn: AsyncConnection, key: str, value: str) -> str:
    """Store ``value`` unless the key exists; return what is stored now."""
    existing = await get(conn, key)
    if existing is not None:
        return existing
    try:
        async with conn.begin_nested():
            await conn.execute(meta.insert().values(key=key, value=value))
    except IntegrityError:
        stored = await get(conn, key)
        assert stored is not None
        return stored
    return value

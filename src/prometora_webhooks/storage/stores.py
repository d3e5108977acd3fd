"""Queries on stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.models import Store
from .tables import stores

_COLS = (stores.c.id, stores.c.name, stores.c.plan, stores.c.created_at, stores.c.updated_at)


def _store(row: Any) -> Store:
    return Store(row.id, row.name, row.plan, row.created_at, row.updated_at)


async def insert(conn: AsyncConnection, store: Store, api_key_hash: str) -> None:
    await conn.execute(
        stores.insert().values(
            id=store.id,
            name=store.name,
            plan=store.plan,
            api_key_hash=api_key_hash,
            created_at=store.created_at,
            updated_at=store.updated_at,
        )
    )


async def get(conn: AsyncConnection, store_id: str) -> Store | None:
    row = (await conn.execute(select(*_COLS).where(stores.c.id == store_id))).first()
    return _store(row) if row else None


async def by_key_hash(conn: AsyncConnection, key_hash: str) -> Store | None:
    row = (await conn.execute(select(*_COLS).where(stores.c.api_key_hash == key_hash))).first()
    return _store(row) if row else None


async def update_fields(conn: AsyncConnection, store_id: str, **values: Any) -> None:
    await conn.execute(update(stores).where(stores.c.id == store_id).values(**values))

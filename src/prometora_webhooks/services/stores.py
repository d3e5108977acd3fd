"""Stores: created and managed by the platform."""

from __future__ import annotations

from ..domain import ids
from ..domain.errors import NotFound, ValidationFailed
from ..domain.models import Store
from ..domain.plans import has_webhooks
from ..domain.timefmt import now_ms
from ..storage import queue
from ..storage import stores as store_q
from ..storage.database import Database
from .auth import new_api_key, token_hash

MAX_NAME = 200
MAX_PLAN = 64


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationFailed(f"name must be 1 to {MAX_NAME} characters")
    if "\x00" in name:
        raise ValidationFailed("name must not contain NUL characters")
    return name


def _check_plan(plan: str) -> str:
    plan = plan.strip().lower()
    if not plan or len(plan) > MAX_PLAN or "\x00" in plan:
        raise ValidationFailed(f"plan must be 1 to {MAX_PLAN} characters, without NUL")
    return plan


class StoreService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str, plan: str) -> tuple[Store, str]:
        now = now_ms()
        store = Store(ids.new_id(ids.STORE), _check_name(name), _check_plan(plan), now, now)
        api_key = new_api_key()
        async with self._db.write() as conn:
            await store_q.insert(conn, store, token_hash(api_key))
        return store, api_key

    async def get(self, store_id: str) -> Store:
        async with self._db.read() as conn:
            store = await store_q.get(conn, store_id)
        if store is None:
            raise NotFound(f"no store {store_id}")
        return store

    async def update(self, store_id: str, name: str | None, plan: str | None) -> Store:
        values: dict[str, str | int] = {}
        if name is not None:
            values["name"] = _check_name(name)
        if plan is not None:
            values["plan"] = _check_plan(plan)
        async with self._db.write() as conn:
            store = await store_q.get(conn, store_id)
            if store is None:
                raise NotFound(f"no store {store_id}")
            if values:
                values["updated_at"] = now_ms()
                await store_q.update_fields(conn, store_id, **values)
                if "plan" in values and not has_webhooks(str(values["plan"])):
                    await queue.drop_scheduled_for_store(conn, store_id)
            store = await store_q.get(conn, store_id)
        assert store is not None
        return store

    async def rotate_api_key(self, store_id: str) -> tuple[Store, str]:
        api_key = new_api_key()
        async with self._db.write() as conn:
            store = await store_q.get(conn, store_id)
            if store is None:
                raise NotFound(f"no store {store_id}")
            await store_q.update_fields(
                conn, store_id, api_key_hash=token_hash(api_key), updated_at=now_ms()
            )
            store = await store_q.get(conn, store_id)
        assert store is not None
        return store, api_key

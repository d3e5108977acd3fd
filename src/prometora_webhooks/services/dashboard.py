"""One-time dashboard login links (the pages themselves live in the dashboard package)."""

from __future__ import annotations

import secrets

from sqlalchemy import insert

from ..domain.errors import NotFound
from ..domain.timefmt import now_ms
from ..storage import stores as store_q
from ..storage.database import Database
from ..storage.tables import dashboard_tokens
from .auth import token_hash

LINK_TTL_MS = 15 * 60 * 1000


class DashboardLinks:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, store_id: str, public_url: str) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + LINK_TTL_MS
        async with self._db.write() as conn:
            if await store_q.get(conn, store_id) is None:
                raise NotFound(f"no store {store_id}")
            await conn.execute(
                insert(dashboard_tokens).values(
                    token_hash=token_hash(token),
                    store_id=store_id,
                    kind="link",
                    expires_at=expires,
                    used_at=None,
                    created_at=now,
                )
            )
        return f"{public_url.rstrip('/')}/dashboard/login?token={token}", expires

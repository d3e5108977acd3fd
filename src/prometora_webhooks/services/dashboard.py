"""The store owner's dashboard: one-time login links, the sessions they start, and the reads
the pages need beyond the other services (an endpoint's recent attempts with their bodies).

A link is single-use and lives 15 minutes; using it starts a session of 12 hours. Both are
random tokens stored only as their SHA-256. A session's CSRF token is an HMAC keyed by the
session token, so it needs no storage and is worthless without the session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..domain.errors import NotFound, Unauthorized
from ..domain.models import Attempt
from ..domain.timefmt import now_ms
from ..storage import attempts as attempt_q
from ..storage import dashboard as token_q
from ..storage import endpoints as ep_q
from ..storage import events as event_q
from ..storage import stores as store_q
from ..storage.database import Database
from .auth import token_hash

LINK_TTL_MS = 15 * 60 * 1000
SESSION_TTL_MS = 12 * 3600 * 1000
# Used and expired tokens are kept this long, so a refused link can say why it was refused.
KEEP_EXPIRED_MS = 24 * 3600 * 1000
RECENT_ATTEMPTS = 10

RefusalReason = Literal["unknown", "used", "expired"]


class LinkRefused(Unauthorized):
    """A login link that cannot be used: unknown, already used, or expired."""

    def __init__(self, reason: RefusalReason) -> None:
        messages = {
            "unknown": "this login link is not valid",
            "used": "this login link has already been used",
            "expired": "this login link has expired",
        }
        super().__init__(messages[reason])
        self.reason: RefusalReason = reason


@dataclass(frozen=True, slots=True)
class DashboardSession:
    token: str
    store_id: str
    expires_at: int

    @property
    def csrf_token(self) -> str:
        return csrf_token(self.token)

    def csrf_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(
            self.csrf_token.encode(), str(candidate).encode()
        )


@dataclass(frozen=True, slots=True)
class RecentAttempt:
    attempt: Attempt
    request_body: bytes | None  # None once the event has been purged


def csrf_token(session_token: str) -> str:
    mac = hmac.new(session_token.encode(), b"prometora-dashboard-csrf/v1", hashlib.sha256)
    return mac.hexdigest()


class DashboardLinks:
    """Login links and sessions of the dashboard, and its delivery-log read."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, store_id: str, public_url: str) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + LINK_TTL_MS
        async with self._db.write() as conn:
            if await store_q.get(conn, store_id) is None:
                raise NotFound(f"no store {store_id}")
            await token_q.insert_token(
                conn, token_hash(token), store_id, token_q.LINK, now, expires
            )
        return f"{public_url.rstrip('/')}/dashboard/login?token={token}", expires

    async def login(self, link_token: str, previous_session: str | None = None) -> DashboardSession:
        """Use a link (once) and start a session; raise ``LinkRefused`` saying why not."""
        digest = token_hash(link_token)
        now = now_ms()
        session = secrets.token_urlsafe(32)
        expires = now + SESSION_TTL_MS
        async with self._db.write() as conn:
            link = await token_q.get(conn, digest, token_q.LINK)
            if link is None:
                raise LinkRefused("unknown")
            if not await token_q.consume_link(conn, digest, now):
                # Not live: used (maybe just now, by a concurrent request) or out of time.
                used = link.used_at is not None or link.expires_at > now
                raise LinkRefused("used" if used else "expired")
            await token_q.insert_token(
                conn, token_hash(session), link.store_id, token_q.SESSION, now, expires
            )
            if previous_session:
                await token_q.delete_token(conn, token_hash(previous_session))
            await token_q.purge_expired(conn, now - KEEP_EXPIRED_MS)
        return DashboardSession(session, link.store_id, expires)

    async def session(self, token: str | None) -> DashboardSession | None:
        """The live session a cookie names, or None."""
        if not token or len(token) > 200:
            return None
        async with self._db.read() as conn:
            row = await token_q.live_session(conn, token_hash(token), now_ms())
        return DashboardSession(token, row.store_id, row.expires_at) if row else None

    async def logout(self, token: str) -> None:
        async with self._db.write() as conn:
            await token_q.delete_token(conn, token_hash(token))

    async def recent_attempts(
        self, store_id: str, endpoint_ids: Sequence[str], limit: int = RECENT_ATTEMPTS
    ) -> dict[str, list[RecentAttempt]]:
        """The newest attempts of each of the store's endpoints, with the bodies sent."""
        out: dict[str, list[RecentAttempt]] = {}
        async with self._db.read() as conn:
            for endpoint_id in endpoint_ids:
                if await ep_q.get(conn, endpoint_id, store_id) is None:
                    raise NotFound(f"no endpoint {endpoint_id}")
                out[endpoint_id] = [
                    RecentAttempt(a, None)
                    for a in await attempt_q.list_page(conn, endpoint_id, limit, None)
                ]
            wanted = sorted({r.attempt.event_id for rows in out.values() for r in rows})
            bodies = await event_q.bodies(conn, wanted)
        return {
            endpoint_id: [
                RecentAttempt(r.attempt, bodies[r.attempt.event_id][1])
                if r.attempt.event_id in bodies
                else r
                for r in rows
            ]
            for endpoint_id, rows in out.items()
        }

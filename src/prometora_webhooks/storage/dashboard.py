"""Queries on dashboard tokens: one-time login links and the sessions they start.

Tokens are stored only as their SHA-256 (``token_hash``); ``kind`` is ``"link"`` or ``"session"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import dashboard_tokens as tokens

LINK = "link"
SESSION = "session"


@dataclass(frozen=True, slots=True)
class TokenRow:
    token_hash: str
    store_id: str
    kind: str
    expires_at: int
    used_at: int | None
    created_at: int


def _row(row: Any) -> TokenRow:
    return TokenRow(
        row.token_hash, row.store_id, row.kind, row.expires_at, row.used_at, row.created_at
    )


async def insert_token(
    conn: AsyncConnection, token_hash: str, store_id: str, kind: str, now: int, expires_at: int
) -> None:
    await conn.execute(
        insert(tokens).values(
            token_hash=token_hash,
            store_id=store_id,
            kind=kind,
            expires_at=expires_at,
            used_at=None,
            created_at=now,
        )
    )


async def get(conn: AsyncConnection, token_hash: str, kind: str) -> TokenRow | None:
    q = select(tokens).where(tokens.c.token_hash == token_hash, tokens.c.kind == kind)
    row = (await conn.execute(q)).first()
    return _row(row) if row else None


async def consume_link(conn: AsyncConnection, token_hash: str, now: int) -> bool:
    """Mark an unused, unexpired link used; False when another request got there first."""
    result = await conn.execute(
        update(tokens)
        .where(
            tokens.c.token_hash == token_hash,
            tokens.c.kind == LINK,
            tokens.c.used_at.is_(None),
            tokens.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return int(result.rowcount or 0) == 1


async def live_session(conn: AsyncConnection, token_hash: str, now: int) -> TokenRow | None:
    q = select(tokens).where(
        tokens.c.token_hash == token_hash,
        tokens.c.kind == SESSION,
        tokens.c.expires_at > now,
    )
    row = (await conn.execute(q)).first()
    return _row(row) if row else None


async def delete_token(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(delete(tokens).where(tokens.c.token_hash == token_hash))


async def purge_expired(conn: AsyncConnection, cutoff: int) -> int:
    """Forget links and sessions that expired before ``cutoff``."""
    result = await conn.execute(delete(tokens).where(tokens.c.expires_at < cutoff))
    return int(result.rowcount or 0)

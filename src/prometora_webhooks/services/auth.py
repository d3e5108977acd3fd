"""Who is calling: the platform (admin token) or one store (its API key)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ..domain.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from ..storage import meta
from ..storage import stores as store_q
from ..storage.database import Database

ADMIN_HASH_KEY = "admin_token_sha256"
API_KEY_PREFIX = "sk_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    admin: bool
    store_id: str | None = None

    def require_admin(self) -> None:
        if not self.admin:
            raise Forbidden("this route needs the platform's admin token, not a store API key")

    def store_scope(self, store_id: str | None) -> str:
        """The store a store-scoped route acts for."""
        if self.admin:
            if not store_id:
                raise ValidationFailed("store_id query parameter is required with the admin token")
            return store_id
        assert self.store_id is not None
        if store_id and store_id != self.store_id:
            raise NotFound(f"no store {store_id}")
        return self.store_id


class AuthService:
    def __init__(self, db: Database, admin_token: str | None) -> None:
        self._db = db
        self._configured = admin_token
        self._admin_hash: bytes | None = (
            bytes.fromhex(token_hash(admin_token)) if admin_token else None
        )

    async def init(self) -> str | None:
        """Load (or, on first start, create) the admin token; return it if created just now."""
        if self._admin_hash is not None:
            return None
        candidate = "adm_" + secrets.token_urlsafe(32)
        async with self._db.write() as conn:
            stored = await meta.put_if_absent(conn, ADMIN_HASH_KEY, token_hash(candidate))
        self._admin_hash = bytes.fromhex(stored)
        return candidate if stored == token_hash(candidate) else None

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("missing Authorization: Bearer <token> header")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("expected Authorization: Bearer <token>")
        digest = token_hash(token)
        if self._admin_hash is not None and hmac.compare_digest(
            bytes.fromhex(digest), self._admin_hash
        ):
            return Principal(admin=True)
        if token.startswith(API_KEY_PREFIX):
            async with self._db.read() as conn:
                store = await store_q.by_key_hash(conn, digest)
            if store is not None:
                return Principal(admin=False, store_id=store.id)
        raise Unauthorized("invalid token")

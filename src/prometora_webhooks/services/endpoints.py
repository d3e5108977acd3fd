"""Endpoints: a store's HTTPS receivers, their subscriptions, secrets and custom headers."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from ..crypto import SecretBox
from ..domain import ids
from ..domain.catalog import Catalog
from ..domain.errors import NotFound, UrlRejected, ValidationFailed
from ..domain.messages import FORMATS
from ..domain.models import DisabledReason, Endpoint, Page
from ..domain.plans import require_webhooks
from ..domain.timefmt import now_ms
from ..domain.urls import check_url
from ..signing import generate_secret
from ..storage import endpoints as ep_q
from ..storage import queue
from ..storage import stores as store_q
from ..storage.database import Database

HostChecker = Callable[[str, bool], Awaitable[None]]

MAX_ENDPOINTS_PER_STORE = 100
MAX_DESCRIPTION = 500
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096
ROTATION_GRACE_MS = 24 * 3600 * 1000
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "user-agent",
        "proxy-authorization",
        "proxy-connection",
    }
)


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    url: str | None = None
    events: Sequence[str] | None = None
    description: str | None = None
    format: str | None = None
    headers: Mapping[str, str] | None = None
    enabled: bool | None = None


class EndpointService:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        catalog: Catalog,
        check_host: HostChecker,
        *,
        allow_http: bool,
        allow_private: bool,
    ) -> None:
        self._db = db
        self._box = box
        self._catalog = catalog
        self._check_host = check_host
        self._allow_http = allow_http
        self._allow_private = allow_private

    # -- validation -------------------------------------------------------------------------
    async def _valid_url(self, url: object) -> str:
        checked = check_url(url, allow_http=self._allow_http, allow_private=self._allow_private)
        if checked.ip is None:
            try:
                await self._check_host(checked.host, self._allow_private)
            except OSError as exc:
                raise UrlRejected(f"url host {checked.host} {exc}") from None
        return checked.url

    def _valid_events(self, events: Sequence[str]) -> tuple[str, ...]:
        if not events:
            raise ValidationFailed("events must list at least one event type")
        for name in events:
            self._catalog.get(name)
        return tuple(dict.fromkeys(events))

    @staticmethod
    def _valid_description(text: str) -> str:
        if len(text) > MAX_DESCRIPTION:
            raise ValidationFailed(f"description must be at most {MAX_DESCRIPTION} characters")
        if "\x00" in text:
            raise ValidationFailed("description must not contain NUL characters")
        return text

    @staticmethod
    def _valid_format(fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValidationFailed(
                f"format {fmt!r} is not available; supported: {', '.join(FORMATS)}"
            )
        return fmt

    @staticmethod
    def _valid_headers(headers: Mapping[str, str]) -> dict[str, str]:
        if len(headers) > MAX_HEADERS:
            raise ValidationFailed(f"at most {MAX_HEADERS} custom headers")
        clean: dict[str, str] = {}
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValidationFailed(f"header name {name!r} is not a valid HTTP header name")
            lower = name.lower()
            if lower in _RESERVED_HEADERS or lower.startswith("webhook-"):
                raise ValidationFailed(f"header {name!r} is set by Prometora and cannot be custom")
            if lower in {k.lower() for k in clean}:
                raise ValidationFailed(f"header {name!r} is given twice")
            if len(value) > MAX_HEADER_VALUE or any(c in value for c in "\r\n\0"):
                raise ValidationFailed(f"header {name!r} has an invalid value")
            clean[name] = value
        return clean

    def _encrypt_headers(self, endpoint_id: str, headers: dict[str, str]) -> str | None:
        if not headers:
            return None
        return self._box.encrypt(json.dumps(headers).encode(), f"headers:{endpoint_id}")

    def _encrypt_secret(self, endpoint_id: str, secret: str) -> str:
        return self._box.encrypt(secret.encode(), f"secret:{endpoint_id}")

    # -- use cases --------------------------------------------------------------------------
    async def create(
        self,
        store_id: str,
        url: str,
        events: Sequence[str],
        description: str = "",
        fmt: str = "standard",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Endpoint, str]:
        types = self._valid_events(events)
        description = self._valid_description(description)
        fmt = self._valid_format(fmt)
        clean_headers = self._valid_headers(headers or {})
        async with self._db.read() as conn:
            store = await store_q.get(conn, store_id)
        if store is None:
            raise NotFound(f"no store {store_id}")
        require_webhooks(store.plan)
        valid_url = await self._valid_url(url)
        now = now_ms()
        endpoint_id = ids.new_id(ids.ENDPOINT)
        ep = Endpoint(
            id=endpoint_id,
            store_id=store_id,
            url=valid_url,
            description=description,
            events=types,
            format=fmt,
            header_names=tuple(clean_headers),
            enabled=True,
            disabled_reason=None,
            consecutive_failures=0,
            last_triggered_at=None,
            created_at=now,
            updated_at=now,
        )
        secret = generate_secret()
        async with self._db.write() as conn:
            # Count and insert under the store's lock: concurrent creates cannot both see 99.
            if not await ep_q.lock_store(conn, store_id):
                raise NotFound(f"no store {store_id}")
            if await ep_q.count_for_store(conn, store_id) >= MAX_ENDPOINTS_PER_STORE:
                raise ValidationFailed(
                    f"a store can have at most {MAX_ENDPOINTS_PER_STORE} endpoints; "
                    "delete one you no longer need"
                )
            await ep_q.insert(
                conn,
                ep,
                self._encrypt_headers(endpoint_id, clean_headers),
                self._encrypt_secret(endpoint_id, secret),
            )
        return ep, secret

    async def get(self, store_id: str, endpoint_id: str) -> Endpoint:
        async with self._db.read() as conn:
            ep = await ep_q.get(conn, endpoint_id, store_id)
        if ep is None:
            raise NotFound(f"no endpoint {endpoint_id}")
        return ep

    async def list(self, store_id: str, limit: int, starting_after: str | None) -> Page[Endpoint]:
        async with self._db.read() as conn:
            after = None
            if starting_after:
                cursor = await ep_q.get(conn, starting_after, store_id)
                if cursor is None:
                    raise ValidationFailed("starting_after is not an endpoint of this store")
                after = (cursor.created_at, cursor.id)
            rows = await ep_q.list_page(conn, store_id, limit + 1, after)
        return Page(rows[:limit], len(rows) > limit)

    async def update(self, store_id: str, endpoint_id: str, ch: EndpointChanges) -> Endpoint:
        current = await self.get(store_id, endpoint_id)
        values: dict[str, object] = {}
        if ch.events is not None:
            values["events"] = self._valid_events(ch.events)
        if ch.description is not None:
            values["description"] = self._valid_description(ch.description)
        if ch.format is not None:
            values["format"] = self._valid_format(ch.format)
        if ch.headers is not None:
            clean = self._valid_headers(ch.headers)
            values["headers_enc"] = self._encrypt_headers(endpoint_id, clean)
            values["header_names"] = tuple(clean)
        enabling = ch.enabled is True and not current.enabled
        if ch.url is not None or enabling:
            async with self._db.read() as conn:
                store = await store_q.get(conn, store_id)
            assert store is not None
            if enabling:
                require_webhooks(store.plan)
            values["url"] = await self._valid_url(ch.url if ch.url is not None else current.url)
            values["parked_until"] = None  # a new address, or a fresh start: deliver at once
        if ch.enabled is not None:
            if ch.enabled and not current.enabled:
                values.update(enabled=True, disabled_reason=None, consecutive_failures=0)
            elif not ch.enabled and current.enabled:
                values.update(enabled=False, disabled_reason=DisabledReason.MANUAL.value)
        async with self._db.write() as conn:
            if await ep_q.get(conn, endpoint_id, store_id) is None:
                raise NotFound(f"no endpoint {endpoint_id}")
            if values:
                values["updated_at"] = now_ms()
                await ep_q.update_fields(conn, endpoint_id, **values)
                if ch.events is not None:
                    await ep_q.set_subscriptions(
                        conn, endpoint_id, store_id, self._valid_events(ch.events)
                    )
                if values.get("enabled") is False:
                    await queue.drop_scheduled_for_endpoints(conn, [endpoint_id])
            ep = await ep_q.get(conn, endpoint_id, store_id)
        assert ep is not None
        return ep

    async def delete(self, store_id: str, endpoint_id: str) -> None:
        async with self._db.write() as conn:
            if await ep_q.get(conn, endpoint_id, store_id) is None:
                raise NotFound(f"no endpoint {endpoint_id}")
            await ep_q.delete_all(conn, endpoint_id)

    async def secret(self, store_id: str, endpoint_id: str) -> str:
        async with self._db.read() as conn:
            if await ep_q.get(conn, endpoint_id, store_id) is None:
                raise NotFound(f"no endpoint {endpoint_id}")
            stored = await ep_q.live_secrets(conn, endpoint_id, now_ms())
        return self._box.decrypt(stored[0], f"secret:{endpoint_id}").decode()

    async def rotate_secret(self, store_id: str, endpoint_id: str) -> str:
        secret = generate_secret()
        async with self._db.write() as conn:
            if await ep_q.get(conn, endpoint_id, store_id) is None:
                raise NotFound(f"no endpoint {endpoint_id}")
            await ep_q.rotate_secret(
                conn,
                endpoint_id,
                self._encrypt_secret(endpoint_id, secret),
                now_ms(),
                ROTATION_GRACE_MS,
            )
        return secret

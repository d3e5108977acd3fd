"""The blocking client. Each method is one line over :mod:`._calls`; ``AsyncClient`` mirrors it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _calls as calls
from ._calls import Call, RetryPolicy, Target
from ._models import Attempt, DashboardLink, Endpoint, Event, EventType, Page, Queued, Store

T = TypeVar("T")
log = logging.getLogger("prometora_webhooks.client")


def paginate(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of a list, page after page: ``fetch(cursor)`` is the page after ``cursor``."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from page.data
        if not page.has_more or page.next_cursor is None:
            return
        cursor = page.next_cursor


class Client:
    """Prometora Webhooks API client (blocking).

    ``token`` is the platform's admin token or a store's API key (``sk_…``). With the admin
    token, store-scoped calls (endpoints, deliveries) need a store: pass ``store_id=`` here, to
    :meth:`with_store`, or to each call.

    Retries: 429 (after ``Retry-After``), 5xx and lost connections, with exponential backoff,
    for calls that are safe to repeat; ``publish`` is made safe with an ``Idempotency-Key``
    (generated when you give none). Errors are :class:`PrometoraError` subclasses.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        store_id: str | None = None,
        timeout: float = 30.0,
        retries: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._target = Target(base_url, token, store_id, retries or RetryPolicy())
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout)
        self.stores = Stores(self)
        self.events = Events(self)
        self.endpoints = Endpoints(self)

    @property
    def store_id(self) -> str | None:
        return self._target.store_id

    def with_store(self, store_id: str) -> Client:
        """A client acting for ``store_id`` (admin token), sharing this one's connections."""
        view = Client(
            self._target.base_url,
            self._target.token,
            store_id=store_id,
            retries=self._target.retries,
            http_client=self._http,
        )
        view._owns_http = False
        return view

    def event_types(self) -> list[EventType]:
        """The event catalog: names, descriptions, JSON Schemas and examples."""
        return self.request(calls.event_types())

    def request(self, call: Call[T]) -> T:
        """Carry out one call, retrying as its :class:`Retry` mode allows."""
        retry = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    self._target.url(call),
                    params=call.params or None,
                    json=call.body,
                    headers=self._target.headers(call),
                )
            except httpx.TransportError as exc:
                delay = self._target.retries.delay(call, retry, None, exc)
                if delay is None:
                    raise calls.connection_error(exc) from exc
                log.info("retrying %s %s in %.2fs after %r", call.method, call.path, delay, exc)
            else:
                if response.is_success:
                    return calls.outcome(call, response, retry > 0)
                delay = self._target.retries.delay(call, retry, response, None)
                if delay is None:
                    return calls.outcome(call, response, retry > 0)
                log.info(
                    "retrying %s %s in %.2fs after HTTP %d",
                    call.method,
                    call.path,
                    delay,
                    response.status_code,
                )
            time.sleep(delay)
            retry += 1

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Stores:
    """Platform calls (admin token): stores and their API keys."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(self, name: str, plan: str) -> Store:
        """A new store; ``.api_key`` is its API key, shown only now."""
        return self._c.request(calls.create_store(name, plan))

    def get(self, store_id: str) -> Store:
        return self._c.request(calls.get_store(store_id))

    def update(self, store_id: str, *, name: str | None = None, plan: str | None = None) -> Store:
        return self._c.request(calls.update_store(store_id, name, plan))

    def rotate_api_key(self, store_id: str) -> Store:
        """A new API key (in ``.api_key``); the old one stops working at once."""
        return self._c.request(calls.rotate_api_key(store_id))

    def dashboard_link(self, store_id: str) -> DashboardLink:
        """A one-time, 15-minute dashboard login URL for the store owner."""
        return self._c.request(calls.dashboard_link(store_id))


class Events:
    def __init__(self, client: Client) -> None:
        self._c = client

    def publish(
        self, store_id: str, type: str, data: Any, *, idempotency_key: str | None = None
    ) -> Event:
        """Publish an event (admin token). Pass your own ``idempotency_key`` (e.g. the order id
        and event type) to make publishing safe across your own retries and restarts too; the
        same key within 24 h returns the first event, with ``.replayed`` set."""
        return self._c.request(calls.publish(store_id, type, data, idempotency_key))


class Endpoints:
    """Store calls: a store API key, or the admin token with a store id."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def _s(self, store_id: str | None) -> str | None:
        return self._c._target.scope(store_id)

    def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        description: str | None = None,
        format: str | None = None,
        headers: Mapping[str, str] | None = None,
        store_id: str | None = None,
    ) -> Endpoint:
        """A new endpoint; ``.secret`` is its signing secret (also at :meth:`secret`)."""
        call = calls.create_endpoint(self._s(store_id), url, events, description, format, headers)
        return self._c.request(call)

    def list(
        self,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        store_id: str | None = None,
    ) -> Page[Endpoint]:
        return self._c.request(calls.list_endpoints(self._s(store_id), limit, starting_after))

    def iter_all(self, *, page_size: int = 100, store_id: str | None = None) -> Iterator[Endpoint]:
        """Every endpoint of the store, fetching pages as needed."""
        return paginate(
            lambda cursor: self.list(limit=page_size, starting_after=cursor, store_id=store_id)
        )

    def get(self, endpoint_id: str, *, store_id: str | None = None) -> Endpoint:
        return self._c.request(calls.get_endpoint(self._s(store_id), endpoint_id))

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        format: str | None = None,
        headers: Mapping[str, str] | None = None,
        enabled: bool | None = None,
        store_id: str | None = None,
    ) -> Endpoint:
        """Change only the fields given. ``enabled=True`` re-enables (and resets failures)."""
        changes = calls.endpoint_changes(url, events, description, format, headers, enabled)
        return self._c.request(calls.update_endpoint(self._s(store_id), endpoint_id, changes))

    def delete(self, endpoint_id: str, *, store_id: str | None = None) -> None:
        self._c.request(calls.delete_endpoint(self._s(store_id), endpoint_id))

    def secret(self, endpoint_id: str, *, store_id: str | None = None) -> str:
        return self._c.request(calls.get_secret(self._s(store_id), endpoint_id))

    def rotate_secret(self, endpoint_id: str, *, store_id: str | None = None) -> str:
        """A new secret; for 24 h each delivery is signed with the old and the new one."""
        return self._c.request(calls.rotate_secret(self._s(store_id), endpoint_id))

    def deliveries(
        self,
        endpoint_id: str,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        store_id: str | None = None,
    ) -> Page[Attempt]:
        """Delivery attempts, newest first (10 by default)."""
        call = calls.list_deliveries(self._s(store_id), endpoint_id, limit, starting_after)
        return self._c.request(call)

    def iter_deliveries(
        self, endpoint_id: str, *, page_size: int = 100, store_id: str | None = None
    ) -> Iterator[Attempt]:
        return paginate(
            lambda cursor: self.deliveries(
                endpoint_id, limit=page_size, starting_after=cursor, store_id=store_id
            )
        )

    def send_test(self, endpoint_id: str, type: str, *, store_id: str | None = None) -> Queued:
        """Send the type's example event to this endpoint (works on disabled endpoints too)."""
        return self._c.request(calls.send_test(self._s(store_id), endpoint_id, type))

    def resend(self, endpoint_id: str, event_id: str, *, store_id: str | None = None) -> Queued:
        """A fresh delivery of the same event (same body and ``webhook-id``) to this endpoint."""
        return self._c.request(calls.resend(self._s(store_id), endpoint_id, event_id))

    def recover(
        self, endpoint_id: str, since: datetime | str, *, store_id: str | None = None
    ) -> int:
        """Re-send every event of the endpoint's types since ``since`` that did not succeed
        there (failed, dropped, or skipped while disabled or off-plan); returns how many."""
        return self._c.request(calls.recover(self._s(store_id), endpoint_id, since))

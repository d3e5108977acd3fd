"""Typed Python SDK for the Prometora Webhooks HTTP API (for the marketplace's backend).

::

    from prometora_webhooks.client import Client

    with Client("https://webhooks.internal", token=ADMIN_TOKEN) as pw:
        store = pw.stores.create("Jane's Ceramics", plan="business")
        event = pw.events.publish(
            store.id, "order.created", order_data, idempotency_key=f"order.created:{order.id}"
        )
        shop = pw.with_store(store.id)          # store-scoped calls with the admin token
        for ep in shop.endpoints.iter_all():
            print(ep.url, ep.enabled, ep.consecutive_failures)

``AsyncClient`` has the same methods, awaited (``async with AsyncClient(...) as pw``).

Errors are :class:`PrometoraError` subclasses carrying the API's ``code``, the HTTP ``status``
and the ``message``. See ``docs/sdk.md`` for the retry rules.
"""

from __future__ import annotations

from ._async import AsyncClient, AsyncEndpoints, AsyncEvents, AsyncStores, apaginate
from ._calls import Call, Retry, RetryPolicy
from ._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PlanUpgradeRequiredError,
    PrometoraError,
    RateLimitedError,
    ServerError,
    ValidationError,
)
from ._models import (
    Attempt,
    DashboardLink,
    Endpoint,
    Event,
    EventType,
    Page,
    Queued,
    Store,
)
from ._sync import Client, Endpoints, Events, Stores, paginate

__all__ = [
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "AsyncEndpoints",
    "AsyncEvents",
    "AsyncStores",
    "Attempt",
    "AuthenticationError",
    "Call",
    "Client",
    "DashboardLink",
    "Endpoint",
    "Endpoints",
    "Event",
    "EventType",
    "Events",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PlanUpgradeRequiredError",
    "PrometoraError",
    "Queued",
    "RateLimitedError",
    "Retry",
    "RetryPolicy",
    "ServerError",
    "Store",
    "Stores",
    "ValidationError",
    "apaginate",
    "paginate",
]

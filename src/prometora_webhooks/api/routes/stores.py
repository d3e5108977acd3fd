"""Platform routes (admin token): stores, publishing, dashboard links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from ... import metrics
from ...domain.timefmt import rfc3339
from ..deps import AdminDep, RuntimeDep
from ..schemas import (
    DashboardLinkOut,
    ErrorEnvelope,
    EventCreate,
    EventOut,
    StoreCreate,
    StoreOut,
    StoreUpdate,
)

router = APIRouter(prefix="/v1/stores", tags=["platform"])
StoreId = Annotated[str, Path(max_length=64)]
ERRORS: dict[int | str, dict[str, object]] = {
    s: {"model": ErrorEnvelope} for s in (401, 403, 404, 413, 422)
}


@router.post("", status_code=201, responses=ERRORS)
async def create_store(body: StoreCreate, rt: RuntimeDep, _: AdminDep) -> StoreOut:
    store, api_key = await rt.stores.create(body.name, body.plan)
    return StoreOut.of(store, api_key)


@router.get("/{store_id}", responses=ERRORS)
async def get_store(store_id: StoreId, rt: RuntimeDep, _: AdminDep) -> StoreOut:
    return StoreOut.of(await rt.stores.get(store_id))


@router.patch("/{store_id}", responses=ERRORS)
async def update_store(
    store_id: StoreId, body: StoreUpdate, rt: RuntimeDep, _: AdminDep
) -> StoreOut:
    return StoreOut.of(await rt.stores.update(store_id, body.name, body.plan))


@router.post("/{store_id}/api-key/rotate", responses=ERRORS)
async def rotate_api_key(store_id: StoreId, rt: RuntimeDep, _: AdminDep) -> StoreOut:
    store, api_key = await rt.stores.rotate_api_key(store_id)
    return StoreOut.of(store, api_key)


@router.post(
    "/{store_id}/events",
    status_code=202,
    response_model=EventOut,
    responses={200: {"model": EventOut, "description": "Idempotent replay"}, **ERRORS},
)
async def publish_event(
    store_id: StoreId,
    body: EventCreate,
    rt: RuntimeDep,
    _: AdminDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    """Publish an event; it is on disk, with its deliveries queued, before the 202."""
    event, replayed = await rt.events.publish(store_id, body.type, body.data, idempotency_key)
    if not replayed:
        metrics.PUBLISHED.inc()
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(
        content=event.body,
        status_code=200 if replayed else 202,
        media_type="application/json",
        headers=headers,
    )


@router.post("/{store_id}/dashboard-links", status_code=201, responses=ERRORS)
async def create_dashboard_link(store_id: StoreId, rt: RuntimeDep, _: AdminDep) -> DashboardLinkOut:
    url, expires = await rt.dashboard_links.create(store_id, rt.public_url)
    return DashboardLinkOut(url=url, expires_at=rfc3339(expires))

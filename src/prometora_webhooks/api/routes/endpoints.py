"""Store routes: endpoints, their secrets, delivery log, test sends and resends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ...domain.errors import ValidationFailed
from ...domain.timefmt import parse_rfc3339
from ...services.endpoints import EndpointChanges
from ..deps import Cursor, Limit, RuntimeDep, StoreIdDep
from ..schemas import (
    Accepted,
    AttemptList,
    AttemptOut,
    EndpointCreate,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
    ErrorEnvelope,
    RecoverOut,
    RecoverRequest,
    SecretOut,
    TestSend,
)

router = APIRouter(prefix="/v1/endpoints", tags=["endpoints"])
EndpointId = Annotated[str, Path(max_length=64)]
ERRORS: dict[int | str, dict[str, object]] = {
    s: {"model": ErrorEnvelope} for s in (401, 402, 404, 413, 422)
}


@router.post("", status_code=201, responses=ERRORS)
async def create_endpoint(
    body: EndpointCreate, rt: RuntimeDep, store_id: StoreIdDep
) -> EndpointOut:
    ep, secret = await rt.endpoints.create(
        store_id, body.url, body.events, body.description, body.format, body.headers
    )
    return EndpointOut.of(ep, secret)


@router.get("", responses=ERRORS)
async def list_endpoints(
    rt: RuntimeDep, store_id: StoreIdDep, limit: Limit = 10, starting_after: Cursor = None
) -> EndpointList:
    page = await rt.endpoints.list(store_id, limit, starting_after)
    return EndpointList(data=[EndpointOut.of(e) for e in page.data], has_more=page.has_more)


@router.get("/{endpoint_id}", responses=ERRORS)
async def get_endpoint(
    endpoint_id: EndpointId, rt: RuntimeDep, store_id: StoreIdDep
) -> EndpointOut:
    return EndpointOut.of(await rt.endpoints.get(store_id, endpoint_id))


@router.patch("/{endpoint_id}", responses=ERRORS)
async def update_endpoint(
    endpoint_id: EndpointId, body: EndpointUpdate, rt: RuntimeDep, store_id: StoreIdDep
) -> EndpointOut:
    changes = EndpointChanges(
        url=body.url,
        events=body.events,
        description=body.description,
        format=body.format,
        headers=body.headers,
        enabled=body.enabled,
    )
    return EndpointOut.of(await rt.endpoints.update(store_id, endpoint_id, changes))


@router.delete("/{endpoint_id}", status_code=204, responses=ERRORS)
async def delete_endpoint(
    endpoint_id: EndpointId, rt: RuntimeDep, store_id: StoreIdDep
) -> Response:
    await rt.endpoints.delete(store_id, endpoint_id)
    return Response(status_code=204)


@router.get("/{endpoint_id}/secret", responses=ERRORS)
async def get_secret(endpoint_id: EndpointId, rt: RuntimeDep, store_id: StoreIdDep) -> SecretOut:
    return SecretOut(secret=await rt.endpoints.secret(store_id, endpoint_id))


@router.post("/{endpoint_id}/secret/rotate", responses=ERRORS)
async def rotate_secret(endpoint_id: EndpointId, rt: RuntimeDep, store_id: StoreIdDep) -> SecretOut:
    """A new secret; for 24 hours each delivery is signed with the old and the new one."""
    return SecretOut(secret=await rt.endpoints.rotate_secret(store_id, endpoint_id))


@router.get("/{endpoint_id}/deliveries", responses=ERRORS)
async def list_deliveries(
    endpoint_id: EndpointId,
    rt: RuntimeDep,
    store_id: StoreIdDep,
    limit: Limit = 10,
    starting_after: Cursor = None,
) -> AttemptList:
    """Attempts, newest first."""
    page = await rt.deliveries.attempts(store_id, endpoint_id, limit, starting_after)
    return AttemptList(data=[AttemptOut.of(a) for a in page.data], has_more=page.has_more)


@router.post("/{endpoint_id}/test", status_code=202, responses=ERRORS)
async def send_test(
    endpoint_id: EndpointId, body: TestSend, rt: RuntimeDep, store_id: StoreIdDep
) -> Accepted:
    """Send the type's example event to this endpoint (logged as a manual attempt)."""
    event_id = await rt.deliveries.send_test(store_id, endpoint_id, body.type)
    return Accepted(event_id=event_id)


@router.post("/{endpoint_id}/events/{event_id}/resend", status_code=202, responses=ERRORS)
async def resend(
    endpoint_id: EndpointId,
    event_id: Annotated[str, Path(max_length=64)],
    rt: RuntimeDep,
    store_id: StoreIdDep,
) -> Accepted:
    """A fresh delivery of the same event body to this endpoint (not retried)."""
    await rt.deliveries.resend(store_id, endpoint_id, event_id)
    return Accepted(event_id=event_id)


@router.post("/{endpoint_id}/recover", status_code=202, responses=ERRORS)
async def recover(
    endpoint_id: EndpointId, body: RecoverRequest, rt: RuntimeDep, store_id: StoreIdDep
) -> RecoverOut:
    """Re-send every event of the endpoint's types since ``since`` that did not succeed there
    (failed, dropped, or skipped while disabled or off-plan), within log retention."""
    try:
        since = parse_rfc3339(body.since)
    except ValueError as exc:
        raise ValidationFailed(f"since: {exc}") from None
    return RecoverOut(queued=await rt.deliveries.recover(store_id, endpoint_id, since))

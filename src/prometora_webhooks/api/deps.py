"""Request-scoped dependencies: the runtime, the caller, the store a route acts for."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from ..runtime import Runtime
from ..services.auth import Principal
from .ratelimit import RateLimiter


async def get_runtime(request: Request) -> Runtime:
    """Async on purpose: FastAPI runs a plain `def` dependency in a worker thread."""
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    # The runtime read here, not as a sub-dependency: every level FastAPI resolves costs on
    # every request (a sixth of the publish route's time went to resolving dependencies).
    rt = await get_runtime(request)
    principal = await rt.auth.authenticate(authorization)
    if principal.store_id is not None:
        limiter: RateLimiter = request.app.state.rate_limiter
        limiter.check(principal.store_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def admin(principal: PrincipalDep) -> Principal:
    principal.require_admin()
    return principal


AdminDep = Annotated[Principal, Depends(admin)]


async def store_scope(
    principal: PrincipalDep,
    store_id: Annotated[
        str | None,
        Query(description="Required with the admin token: the store to act for", max_length=64),
    ] = None,
) -> str:
    return principal.store_scope(store_id)


StoreIdDep = Annotated[str, Depends(store_scope)]

Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1–100)")]
Cursor = Annotated[
    str | None,
    Query(max_length=64, description="Cursor: the id of the last item of the previous page"),
]

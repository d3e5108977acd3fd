from __future__ import annotations

from fastapi import APIRouter

from ..deps import PrincipalDep, RuntimeDep
from ..schemas import EventTypeList, EventTypeOut

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/event-types")
async def event_types(rt: RuntimeDep, _: PrincipalDep) -> EventTypeList:
    return EventTypeList(
        data=[
            EventTypeOut(
                name=t.name, description=t.description, schema_=t.schema, example=t.example
            )
            for t in rt.catalog.all()
        ]
    )

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ... import metrics
from ...domain.timefmt import now_ms
from ...storage import queue
from ...storage.database import DatabaseFileGone
from ..deps import RuntimeDep
from ..errors import envelope

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(rt: RuntimeDep) -> JSONResponse | dict[str, str]:
    """The process can use its database: reachable (PostgreSQL), the file it has open still in
    place (SQLite)."""
    try:
        await rt.db.ping()
    except DatabaseFileGone as exc:
        return envelope(503, "unavailable", str(exc))
    except Exception:
        return envelope(503, "unavailable", "database unreachable")
    return {"status": "ready"}


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(rt: RuntimeDep) -> Response:
    """Prometheus text format: this process's counters plus the queue's depth and age."""
    try:
        now = now_ms()
        async with rt.db.read() as conn:
            depth, oldest = await queue.stats(conn, now)
        metrics.QUEUE_DEPTH.set(depth)
        metrics.QUEUE_OLDEST_AGE.set(max(0.0, (now - oldest) / 1000) if oldest else 0.0)
    except Exception:  # the counters are still worth serving without the database
        metrics.QUEUE_DEPTH.set(float("nan"))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

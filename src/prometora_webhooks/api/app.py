"""The application factory: API (and, with ``serve``, the delivery worker in the same loop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .. import __version__, dashboard
from ..delivery.worker import Worker
from ..runtime import Runtime
from . import errors
from .limits import BodyLimitMiddleware
from .publish_path import PublishPath
from .ratelimit import RateLimiter
from .routes import catalog, endpoints, health, stores, stream

log = logging.getLogger("prometora_webhooks")


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("delivery worker stopped unexpectedly", exc_info=task.exception())


def create_app(
    runtime: Runtime, *, with_worker: bool = False, publish_path: bool = True
) -> FastAPI:
    """``publish_path=False`` leaves every publish to the FastAPI route (the tests compare the
    two)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        generated = await runtime.auth.init()
        if generated:
            print(
                f"Admin token (shown once, store it safely): {generated}",
                file=sys.stderr,
                flush=True,
            )
        worker_task = None
        worker = None
        if with_worker:
            await runtime.notifier.start()
            worker = Worker(runtime.settings, runtime.db, runtime.box, runtime.notifier)
            worker_task = asyncio.create_task(worker.run(), name="pw-worker")
            worker_task.add_done_callback(_report_crash)
        app.state.worker = worker
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
            await runtime.close()

    app = FastAPI(
        title="Prometora Webhooks",
        version=__version__,
        description="Signed, retried, logged webhooks for Prometora marketplace stores.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.rate_limiter = RateLimiter(
        runtime.settings.rate_limit, runtime.settings.rate_limit_burst
    )
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware)
    if publish_path:  # outside the body cap's middleware: it keeps the cap itself
        app.add_middleware(PublishPath, runtime=runtime)
    for r in (health.router, stores.router, catalog.router, endpoints.router, stream.router):
        app.include_router(r)
    app.include_router(dashboard.router)
    app.mount(
        dashboard.STATIC_PREFIX, StaticFiles(directory=dashboard.STATIC_DIR), "dashboard-static"
    )
    return app

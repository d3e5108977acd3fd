"""FastAPI and Starlette: verify a delivery from the raw request body.

FastAPI, as a dependency (answers ``400`` when verification fails)::

    from typing import Annotated, Any
    from fastapi import Depends, FastAPI
    from prometora_webhooks.receiver.fastapi import verified_event

    app = FastAPI()
    Event = Annotated[dict[str, Any], Depends(verified_event(lambda: settings.webhook_secret))]

    @app.post("/webhooks/prometora")
    async def receive(event: Event) -> dict[str, str]:
        ...  # event["id"], event["type"], event["data"]
        return {"status": "ok"}

Starlette, in an endpoint (raises :class:`WebhookVerificationError`)::

    event = await verify_request(request, secret)

Do not declare a body model on the same route: the signature covers the raw bytes, which this
reads itself (Starlette caches them, so reading the body again later is fine).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ._verify import Reason, WebhookVerificationError, verify_pairs

log = logging.getLogger("prometora_webhooks.receiver")

SecretSource = str | Callable[[], str]
"""The ``whsec_`` secret, or a function returning it (read at each request: rotation-friendly)."""


def _resolve(secret: SecretSource) -> str:
    return secret() if callable(secret) else secret


async def verify_request(request: Request, secret: str, tolerance: int = 300) -> dict[str, Any]:
    """Read the raw body of ``request``, verify it and return the event."""
    body = await request.body()
    return verify_pairs(body, request.headers.items(), secret, tolerance)


def verified_event(
    secret: SecretSource, tolerance: int = 300
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """A FastAPI dependency returning the verified event, or answering ``400`` (``500`` when the
    configured secret itself is unusable: that is the receiver's fault, and worth a retry)."""

    async def dependency(request: Request) -> dict[str, Any]:
        try:
            return await verify_request(request, _resolve(secret), tolerance)
        except WebhookVerificationError as exc:
            if exc.reason is Reason.INVALID_SECRET:
                log.error("webhook secret misconfigured: %s", exc.message)
                raise HTTPException(500, "webhook receiver misconfigured") from None
            log.warning("rejected webhook: %s", exc)
            raise HTTPException(400, f"webhook verification failed: {exc}") from None

    return dependency

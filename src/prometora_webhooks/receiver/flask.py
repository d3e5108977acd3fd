"""Flask: a decorator that verifies the delivery and passes the event to the view.

::

    from flask import Flask
    from prometora_webhooks.receiver.flask import verify_webhook

    app = Flask(__name__)
    app.config["PROMETORA_WEBHOOK_SECRET"] = "whsec_…"

    @app.post("/webhooks/prometora")
    @verify_webhook()                 # or verify_webhook("whsec_…"), or a function returning it
    def receive(event):
        ...                           # event["id"], event["type"], event["data"]
        return {"status": "ok"}

A request that fails verification gets ``400`` with ``{"error": {"code", "message"}}`` (``500``
when the configured secret is unusable). Flask is needed only when this module is imported.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ._verify import Reason, WebhookVerificationError, verify_pairs

P = ParamSpec("P")
R = TypeVar("R")
CONFIG_KEY = "PROMETORA_WEBHOOK_SECRET"
log = logging.getLogger("prometora_webhooks.receiver")


def _abort(status: int, code: str, message: str) -> HTTPException:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return HTTPException(description=message, response=response)


def verify_webhook(
    secret: str | Callable[[], str] | None = None, tolerance: int = 300
) -> Callable[[Callable[Concatenate[dict[str, Any], P], R]], Callable[P, R]]:
    """Verify the request; call the view with the event as its first argument.

    ``secret``: the ``whsec_`` secret, a function returning it, or ``None`` to read
    ``app.config["PROMETORA_WEBHOOK_SECRET"]`` at each request.
    """

    def decorate(view: Callable[Concatenate[dict[str, Any], P], R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if secret is None:
                key = str(current_app.config.get(CONFIG_KEY, ""))
            else:
                key = secret() if callable(secret) else secret
            body = request.get_data(cache=True)
            try:
                event = verify_pairs(body, request.headers.items(), key, tolerance)
            except WebhookVerificationError as exc:
                if exc.reason is Reason.INVALID_SECRET:
                    log.error("webhook secret misconfigured: %s", exc.message)
                    raise _abort(500, "misconfigured", "webhook receiver misconfigured") from None
                log.warning("rejected webhook: %s", exc)
                raise _abort(400, exc.reason.value, exc.message) from None
            return view(event, *args, **kwargs)

        return wrapper

    return decorate

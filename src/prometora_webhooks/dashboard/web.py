"""Rendering and HTTP hygiene shared by every dashboard page.

Pages are Jinja2 templates with autoescaping on (every string a receiver or owner controls is
escaped), served with a strict Content-Security-Policy: scripts and styles come only from
``/dashboard/static``, nothing inline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .. import __version__
from ..domain.errors import AppError, NotFound, PlanUpgradeRequired
from ..domain.timefmt import rfc3339
from ..services.dashboard import LinkRefused

log = logging.getLogger("prometora_webhooks.dashboard")

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/dashboard/static"

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class NotSignedIn(Exception):
    """No live dashboard session (none, expired, or signed out)."""


class CsrfRejected(Exception):
    """A state-changing form without this session's CSRF token."""


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(ms: int) -> str:
    return rfc3339(ms, millis=True)


def _ago(ms: int, now: int) -> str:
    seconds = max(0, (now - ms) // 1000)
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds} seconds ago"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"  # pragma: no cover


def _delay(seconds: float) -> str:
    """A delay as people say it: '~1 minute', '~10 minutes', '~2 seconds'."""
    if seconds >= 3600 and seconds % 3600 == 0:
        n, unit = int(seconds // 3600), "hour"
    elif seconds >= 60:
        n, unit = round(seconds / 60), "minute"
    else:
        n, unit = round(seconds), "second"
    return f"~{n} {unit}{'s' if n != 1 else ''}"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("prometora_webhooks.dashboard", "templates"),
        autoescape=select_autoescape(("html",), default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = _utc
    env.filters["iso"] = _iso
    env.filters["delay"] = _delay
    env.globals["ago"] = _ago
    env.globals["static"] = lambda name: f"{STATIC_PREFIX}/{name}?v={__version__}"
    env.globals["version"] = __version__
    return env


templates = _environment()


def render(name: str, context: Mapping[str, Any]) -> str:
    return templates.get_template(name).render(**context)


def render_fragment(name: str, context: Mapping[str, Any]) -> Markup:
    """A partial template's HTML, to embed in a page as is (it was escaped when rendered)."""
    return Markup(render(name, context))  # noqa: S704 - autoescaped template output


def page(
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return HTMLResponse(
        render(name, context), status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=SECURITY_HEADERS)


def message_page(
    status: int, title: str, message: str, *, hint: str = "", action: tuple[str, str] | None = None
) -> HTMLResponse:
    """A plain page saying what happened and what to do (errors, refusals, sign-out)."""
    return page(
        "message.html",
        {"title": title, "message": message, "hint": hint, "action": action, "store": None},
        status,
    )


SIGNED_OUT_HINT = (
    "Dashboard links are created by your marketplace: open Store Settings → Webhooks there "
    "again, or ask your marketplace administrator for a new link."
)


def link_refused_page(exc: LinkRefused, *, signed_in: bool = False) -> HTMLResponse:
    titles = {
        "unknown": "This login link is not valid",
        "used": "This login link has already been used",
        "expired": "This login link has expired",
    }
    response = message_page(
        400 if exc.reason == "unknown" else 410,
        titles[exc.reason],
        "For your security, each dashboard link works once, and only for 15 minutes.",
        hint="You are still signed in in this browser." if signed_in else SIGNED_OUT_HINT,
        action=("/dashboard/webhooks", "Go to Webhooks") if signed_in else None,
    )
    response.headers["Referrer-Policy"] = "no-referrer"  # the link's token is in the URL
    return response


def _error_page(exc: Exception) -> Response:
    if isinstance(exc, NotSignedIn):
        return message_page(
            401,
            "Your session has ended",
            "Sign in again with a new dashboard link to manage your webhooks.",
            hint=SIGNED_OUT_HINT,
        )
    if isinstance(exc, CsrfRejected):
        return message_page(
            403,
            "This form could not be accepted",
            "The request did not carry this session's security token, so nothing was changed.",
            hint="Go back to the Webhooks page, reload it, and try again.",
            action=("/dashboard/webhooks", "Back to Webhooks"),
        )
    if isinstance(exc, LinkRefused):
        return link_refused_page(exc)
    if isinstance(exc, NotFound):
        return message_page(
            404,
            "Not found",
            "That endpoint or event does not exist in your store (it may have been deleted).",
            action=("/dashboard/webhooks", "Back to Webhooks"),
        )
    if isinstance(exc, PlanUpgradeRequired):
        return message_page(
            402,
            "Business plan required",
            exc.message,
            action=("/dashboard/webhooks", "Back to Webhooks"),
        )
    if isinstance(exc, AppError):
        return message_page(
            exc.status,
            "Something needs your attention",
            exc.message,
            action=("/dashboard/webhooks", "Back to Webhooks"),
        )
    if isinstance(exc, RequestValidationError):
        return message_page(
            422,
            "That request was not understood",
            "Some of the information sent was missing or malformed, so nothing was changed.",
            action=("/dashboard/webhooks", "Back to Webhooks"),
        )
    raise exc


class DashboardRoute(APIRoute):
    """Turns the errors a page can meet into HTML pages instead of the API's JSON envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (
                NotSignedIn,
                CsrfRejected,
                AppError,
                RequestValidationError,
            ) as exc:
                return _error_page(exc)

        return handle

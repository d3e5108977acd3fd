"""Store Settings → Webhooks: the pages, their forms, and the live fragments they poll.

Every action is a plain HTML form (POST, CSRF token, then a redirect back to the page), so the
dashboard works without JavaScript; ``static/dashboard.js`` only adds copy buttons,
confirmation dialogs and live updates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from ..domain.catalog import Catalog
from ..domain.errors import PlanUpgradeRequired, UrlRejected, ValidationFailed
from ..domain.messages import FORMATS
from ..domain.models import Endpoint
from ..domain.plans import has_webhooks
from ..domain.timefmt import now_ms
from ..domain.urls import check_url
from ..services.dashboard import DashboardSession, LinkRefused
from ..services.deliveries import MAX_RECOVER
from ..services.endpoints import MAX_DESCRIPTION, EndpointChanges
from . import views
from .session import (
    COOKIE,
    FormDep,
    RuntimeDep,
    SessionDep,
    clear_session_cookie,
    optional_session,
    set_session_cookie,
)
from .web import (
    DashboardRoute,
    json_response,
    link_refused_page,
    message_page,
    page,
    render_fragment,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=DashboardRoute)

PAGE = "/dashboard/webhooks"
Id = Annotated[str, Query(max_length=64)]
MAX_TOKEN = 200
LIVE_PARTS = (
    ("head", "_endpoint_head.html"),
    ("summary", "_deliveries_summary.html"),
    ("deliveries", "_deliveries.html"),
    ("recover", "_recover.html"),
)


@dataclass(frozen=True, slots=True)
class Fragment:
    html: Markup
    hash: str  # lets the page's script skip parts that did not change

    @classmethod
    def of(cls, html: Markup) -> Fragment:
        return cls(html, hashlib.sha256(html.encode()).hexdigest()[:16])


def _back(
    done: str, endpoint_id: str = "", *, reveal: bool = False, count: int | None = None
) -> RedirectResponse:
    query = f"?done={done}"
    if endpoint_id:
        query += f"&ep={endpoint_id}" + (f"&reveal={endpoint_id}" if reveal else "")
    if count is not None:
        query += f"&n={count}"
    anchor = f"#ep-{endpoint_id}" if endpoint_id and done != "deleted" else ""
    return RedirectResponse(PAGE + query + anchor, status_code=303)


def _sentence(message: str) -> str:
    """A service message ('url must use https://') as a sentence for the page."""
    text = message.strip()
    if text.startswith("url "):
        text = "The URL " + text[4:]
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


async def _endpoints(rt: RuntimeDep, store_id: str) -> list[Endpoint]:
    found: list[Endpoint] = []
    after: str | None = None
    while True:
        batch = await rt.endpoints.list(store_id, 100, after)
        found.extend(batch.data)
        if not batch.has_more or not batch.data:
            return found
        after = batch.data[-1].id


@cache
def _sent_bodies(catalog: Catalog) -> views.SentBodies:
    """One cache of rendered chat messages per catalog (that is, per running service)."""
    return views.SentBodies(catalog)


def _fragments(ctx: dict[str, Any]) -> dict[str, Fragment]:
    return {key: Fragment.of(render_fragment(name, ctx)) for key, name in LIVE_PARTS}


async def _context(rt: RuntimeDep, session: DashboardSession) -> dict[str, Any]:
    store = await rt.stores.get(session.store_id)
    endpoints = await _endpoints(rt, store.id)
    recent = await rt.dashboard_links.recent_attempts(store.id, [e.id for e in endpoints])
    ctx = views.page_context(
        store=store,
        settings=rt.settings,
        catalog=rt.catalog,
        endpoints=views.endpoint_views(
            endpoints, recent, rt.settings.disable_after, _sent_bodies(rt.catalog)
        ),
        csrf=session.csrf_token,
        now=now_ms(),
    )
    # The parts the page refreshes in place: rendered here for the page and for /live alike.
    ctx["live"] = {ev.id: _fragments({**ctx, "ev": ev}) for ev in ctx["endpoints"]}
    ctx.update(
        notice=None,
        created=None,
        revealed={},
        form=views.FormState(),
        form_open=False,
        action_errors={},
        action_notices={},
        open_deliveries=set(),
    )
    return ctx


async def _webhooks_page(
    rt: RuntimeDep, session: DashboardSession, status: int = 200, **extra: Any
) -> Response:
    ctx = await _context(rt, session)
    ctx.update(extra)
    if not ctx["endpoints"]:
        ctx["form_open"] = True
    return page("webhooks.html", ctx, status)


# -- signing in and out --------------------------------------------------------------------


@router.get("")
async def index() -> RedirectResponse:
    return RedirectResponse(PAGE, status_code=303)


@router.get("/login")
async def login(request: Request, rt: RuntimeDep, token: str = "") -> Response:
    """Use a one-time link: start a session and go to the Webhooks page."""
    try:
        if not token or len(token) > MAX_TOKEN:
            raise LinkRefused("unknown")
        session = await rt.dashboard_links.login(token, request.cookies.get(COOKIE))
    except LinkRefused as exc:
        current = await optional_session(request, rt)
        return link_refused_page(exc, signed_in=current is not None)
    response = RedirectResponse(PAGE, status_code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(response, rt, session)
    return response


@router.post("/logout")
async def logout(rt: RuntimeDep, session: SessionDep, _: FormDep) -> Response:
    await rt.dashboard_links.logout(session.token)
    response = message_page(
        200,
        "You are signed out",
        "Your dashboard session has ended in this browser.",
        hint="To come back, open Store Settings → Webhooks in your marketplace again.",
    )
    clear_session_cookie(response, rt)
    return response


# -- the Webhooks page ---------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks(
    rt: RuntimeDep,
    session: SessionDep,
    done: Annotated[str, Query(max_length=32)] = "",
    ep: Id = "",
    reveal: Id = "",
    n: Annotated[int, Query(ge=0, le=MAX_RECOVER)] = 0,
) -> Response:
    revealed: dict[str, str] = {}
    if reveal:
        revealed[reveal] = await rt.endpoints.secret(session.store_id, reveal)
    show_deliveries = done in ("test", "resent") or (done == "recovered" and n > 0)
    extra: dict[str, Any] = {
        "notice": views.NOTICES.get(done),
        "revealed": revealed,
        "open_deliveries": {ep} if show_deliveries else set(),
    }
    if done == "recovered" and ep:
        # Said on the endpoint itself, beside the form (the page scrolls to it).
        extra["action_notices"] = {ep: views.recovered_text(n)}
    if done == "created" and ep:
        extra["created"] = {
            "endpoint": await rt.endpoints.get(session.store_id, ep),
            "secret": await rt.endpoints.secret(session.store_id, ep),
        }
    return await _webhooks_page(rt, session, **extra)


@router.get("/webhooks/live")
async def live(request: Request, rt: RuntimeDep) -> Response:
    """The parts of the page that change as deliveries happen, as HTML fragments by endpoint."""
    session = await optional_session(request, rt)
    if session is None:
        return json_response({"signed_out": True}, 401)
    ctx = await _context(rt, session)
    return json_response(
        {
            "order": [ev.id for ev in ctx["endpoints"]],
            "endpoints": {
                endpoint_id: {
                    key: {"html": str(f.html), "hash": f.hash} for key, f in parts.items()
                }
                for endpoint_id, parts in ctx["live"].items()
            },
        }
    )


@router.post("/webhooks/endpoints")
async def create_endpoint(rt: RuntimeDep, session: SessionDep, form: FormDep) -> Response:
    state = views.FormState(
        url=form.get("url").strip(),
        description=form.get("description").strip(),
        events=tuple(form.all("events")),
        format=form.get("format", "standard"),
    )
    errors: dict[str, str] = {}
    if not state.url:
        errors["url"] = "Enter your endpoint's URL. It must start with https://."
    else:
        try:  # the shape of the URL, so it is reported together with other mistakes
            check_url(
                state.url,
                allow_http=rt.settings.allow_http,
                allow_private=rt.settings.allow_private_networks,
            )
        except UrlRejected as exc:
            errors["url"] = _sentence(exc.message)
    if not state.events:
        errors["events"] = "Select at least one event to receive."
    if state.format not in FORMATS:
        errors["format"] = "Choose one of the formats below."
    if len(state.description) > MAX_DESCRIPTION:
        errors["description"] = f"Keep the description under {MAX_DESCRIPTION} characters."
    if not errors:
        try:
            ep, _ = await rt.endpoints.create(
                session.store_id, state.url, state.events, state.description, state.format
            )
        except UrlRejected as exc:
            errors["url"] = _sentence(exc.message)
        except PlanUpgradeRequired:
            raise
        except ValidationFailed as exc:
            errors["form"] = _sentence(exc.message)
        else:
            return _back("created", ep.id)
    failed = views.FormState(state.url, state.description, state.events, errors, state.format)
    return await _webhooks_page(rt, session, 422, form=failed, form_open=True)


@router.get("/webhooks/endpoints/{endpoint_id}/secret")
async def secret(endpoint_id: str, rt: RuntimeDep, session: SessionDep) -> Response:
    """The current signing secret (for the Reveal button's script)."""
    return json_response({"secret": await rt.endpoints.secret(session.store_id, endpoint_id)})


async def _set_enabled(
    rt: RuntimeDep, session: DashboardSession, endpoint_id: str, enabled: bool
) -> Response:
    try:
        await rt.endpoints.update(session.store_id, endpoint_id, EndpointChanges(enabled=enabled))
    except (UrlRejected, PlanUpgradeRequired) as exc:
        # Re-enabling re-validates the URL (and the plan): say why it stays disabled.
        message = f"This endpoint could not be enabled: {_sentence(exc.message)}"
        return await _webhooks_page(rt, session, 422, action_errors={endpoint_id: message})
    return _back("enabled" if enabled else "disabled", endpoint_id)


@router.post("/webhooks/endpoints/{endpoint_id}/enable")
async def enable(endpoint_id: str, rt: RuntimeDep, session: SessionDep, _: FormDep) -> Response:
    return await _set_enabled(rt, session, endpoint_id, True)


@router.post("/webhooks/endpoints/{endpoint_id}/disable")
async def disable(endpoint_id: str, rt: RuntimeDep, session: SessionDep, _: FormDep) -> Response:
    return await _set_enabled(rt, session, endpoint_id, False)


@router.post("/webhooks/endpoints/{endpoint_id}/delete")
async def delete(endpoint_id: str, rt: RuntimeDep, session: SessionDep, form: FormDep) -> Response:
    if form.get("confirmed") != "yes":
        # Without the script's dialog: ask on a page of its own.
        endpoint = await rt.endpoints.get(session.store_id, endpoint_id)
        store = await rt.stores.get(session.store_id)
        return page(
            "confirm_delete.html",
            {
                "endpoint": endpoint,
                "store": store,
                "business": has_webhooks(store.plan),
                "csrf": session.csrf_token,
            },
        )
    await rt.endpoints.delete(session.store_id, endpoint_id)
    return _back("deleted")


@router.post("/webhooks/endpoints/{endpoint_id}/rotate-secret")
async def rotate_secret(
    endpoint_id: str, rt: RuntimeDep, session: SessionDep, _: FormDep
) -> Response:
    await rt.endpoints.rotate_secret(session.store_id, endpoint_id)
    return _back("rotated", endpoint_id, reveal=True)


@router.post("/webhooks/endpoints/{endpoint_id}/test")
async def send_test(
    endpoint_id: str, rt: RuntimeDep, session: SessionDep, form: FormDep
) -> Response:
    try:
        await rt.deliveries.send_test(session.store_id, endpoint_id, form.get("type"))
    except PlanUpgradeRequired:
        raise
    except ValidationFailed as exc:
        return await _webhooks_page(
            rt, session, 422, action_errors={endpoint_id: _sentence(exc.message)}
        )
    return _back("test", endpoint_id)


@router.post("/webhooks/endpoints/{endpoint_id}/events/{event_id}/resend")
async def resend(
    endpoint_id: str, event_id: str, rt: RuntimeDep, session: SessionDep, _: FormDep
) -> Response:
    await rt.deliveries.resend(session.store_id, endpoint_id, event_id)
    return _back("resent", endpoint_id)


@router.post("/webhooks/endpoints/{endpoint_id}/recover")
async def recover(endpoint_id: str, rt: RuntimeDep, session: SessionDep, form: FormDep) -> Response:
    """Queue again the events this endpoint missed in the chosen window (within retention)."""
    windows = {w.key: w for w in views.recover_windows(rt.settings.log_retention_days)}
    window = windows.get(form.get("window"))
    try:
        if window is None:
            await rt.endpoints.get(session.store_id, endpoint_id)  # another store's: a 404
            raise ValidationFailed("choose how far back to recover missed events")
        since = now_ms() - int(window.seconds * 1000)
        queued = await rt.deliveries.recover(session.store_id, endpoint_id, since)
    except PlanUpgradeRequired:
        raise
    except ValidationFailed as exc:
        message = _sentence(exc.message)
        if not (await rt.endpoints.get(session.store_id, endpoint_id)).enabled:
            message = views.RECOVER_DISABLED
        return await _webhooks_page(rt, session, 422, action_errors={endpoint_id: message})
    return _back("recovered", endpoint_id, count=queued)

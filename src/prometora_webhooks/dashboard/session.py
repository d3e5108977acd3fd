"""The session cookie, the signed-in store, and CSRF-checked form bodies."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response

from ..runtime import Runtime
from ..services.dashboard import SESSION_TTL_MS, DashboardSession
from .web import CsrfRejected, NotSignedIn

COOKIE = "prometora_dashboard"
COOKIE_PATH = "/dashboard"
MAX_FORM_FIELDS = 64


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def secure_cookies(rt: Runtime) -> bool:
    return rt.public_url.lower().startswith("https://")


def set_session_cookie(response: Response, rt: Runtime, session: DashboardSession) -> None:
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=SESSION_TTL_MS // 1000,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(rt),
    )


def clear_session_cookie(response: Response, rt: Runtime) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure_cookies(rt)
    )


async def optional_session(request: Request, rt: RuntimeDep) -> DashboardSession | None:
    return await rt.dashboard_links.session(request.cookies.get(COOKIE))


async def current_session(
    session: Annotated[DashboardSession | None, Depends(optional_session)],
) -> DashboardSession:
    if session is None:
        raise NotSignedIn
    return session


SessionDep = Annotated[DashboardSession, Depends(current_session)]


class Form:
    """A url-encoded form body (the dashboard posts nothing else)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


async def read_form(request: Request) -> Form:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return Form([])
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return Form([])
    return Form(pairs)


async def checked_form(request: Request, session: SessionDep) -> Form:
    """The posted form, refused unless it carries this session's CSRF token."""
    form = await read_form(request)
    if not session.csrf_ok(form.get("csrf_token")):
        raise CsrfRejected
    return form


FormDep = Annotated[Form, Depends(checked_form)]
